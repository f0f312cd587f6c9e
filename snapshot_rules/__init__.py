"""How state folds and when to snapshot: domain definitions, reducers, rules and replay.

Public API: the modules listed in ``__all__`` (``domains`` holds the examples).
"""

__all__ = [
    "declaration",
    "domain",
    "domains",
    "projection",
    "queries",
    "replay",
    "rules",
    "schema",
    "upcasting",
]
