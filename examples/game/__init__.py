"""Tic-tac-toe for two browsers: the turn-based game example (see README.md)."""
