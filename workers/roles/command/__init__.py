"""The command side: a request parsed, validated, marked (async) or checked on state (sync),
answered.

``commands`` is the door: it takes a request in once (``intake``) and hands it to its domain's
mode, ``async_mode`` or ``sync_mode``; both draw the write from its principal's ``budget`` first
and ask ``fate`` what became of a command retried.

Public API: the modules in ``__all__``.
"""

__all__ = [
    "async_mode",
    "budget",
    "commands",
    "fate",
    "intake",
    "ledger",
    "newfilter",
    "refusals",
    "requests",
    "resolver",
    "sync_mode",
]
