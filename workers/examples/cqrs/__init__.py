"""Commands of the examples: the account and the order book (typed, on the event store), and
the users (named commands, on EventSourcedStorage)."""

__all__ = ["account", "trading", "users"]
