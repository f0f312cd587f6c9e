"""Operator jobs over the other sides: archiving, auditing, replaying dead letters.

Public API: the modules in ``__all__``.
"""

__all__ = ["archive", "audit", "dlq_replay"]
