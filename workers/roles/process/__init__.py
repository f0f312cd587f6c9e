"""Process managers at work: stored events and due deadlines react, commands go out once.

Public API: the modules in ``__all__``.
"""

__all__ = ["desk", "polls", "runner", "steps"]
