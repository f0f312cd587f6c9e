"""The read side: live subscriptions, paged histories, projections and snapshots kept from stored events.

Public API: the modules in ``__all__``.
"""

__all__ = ["live", "paging", "projections", "snapshotter"]
