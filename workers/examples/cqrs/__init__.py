"""Commands of the examples: the account and the order book (typed, on the event store), and
seed 003's users (named, on EventSourcedStorage)."""

__all__ = ["account", "trading", "users"]
