"""Seed 002 on ``EventSourcedStorage``: a shared game state, a user profile, and both as fleet domains."""

__all__ = ["fleet", "games_and_users"]
