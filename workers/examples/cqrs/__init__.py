"""Typed commands of the example sync domains: the account and the order book."""

__all__ = ["account", "trading"]
