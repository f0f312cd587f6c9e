"""Documents on ``EventSourcedStorage``: a shared game state, a user profile, both as domains."""

__all__ = ["fleet", "games_and_users"]
