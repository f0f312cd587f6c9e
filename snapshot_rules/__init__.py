"""How state folds and when to snapshot: domain definitions, reducers, rules and replay.

Public API: the modules listed in ``__all__``; the example domains are in ``workers.examples``.
"""

__all__ = [
    "declaration",
    "domain",
    "personal",
    "process",
    "projection",
    "queries",
    "replay",
    "rules",
    "schema",
    "upcasting",
]
