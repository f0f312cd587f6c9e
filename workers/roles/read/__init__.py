"""The read side: live subscriptions, paged histories, the global read of every stored event
(and its positions), projections and snapshots kept from stored events.

Public API: the modules in ``__all__``.
"""

__all__ = ["global_read", "live", "paging", "position", "projections", "snapshotter"]
