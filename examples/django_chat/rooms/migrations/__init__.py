"""Migrations of the rooms app."""
