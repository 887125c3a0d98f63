"""Channels' tutorial chat on interlock: Django login, messages saved through the ORM, a worker."""
