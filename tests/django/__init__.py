"""Tests of :mod:`interlock.actors.django`, in-process against a real Django project on SQLite."""
