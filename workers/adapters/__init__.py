"""Adapters: one package per technology, each implementing the ports and translating its errors.

Public API: the packages in ``__all__`` and what each re-exports.
"""

__all__ = ["kafka", "memory", "mongo", "nats", "redis"]
