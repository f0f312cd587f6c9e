"""Role logic: plain async code over the ports (no Faust, no driver), one module per role.

Public API: the modules in ``__all__``; the runtime composes them, tests drive them alone.
"""

__all__ = [
    "appender",
    "archive",
    "audit",
    "commands",
    "deadletter",
    "dlq_replay",
    "forwarder",
    "judge",
    "newfilter",
    "outbox",
    "paging",
    "personal",
    "projections",
    "requests",
    "retry",
    "snapshotter",
    "state",
]
