"""What flows through eventfleet: the event envelope, its codec, errors and the topic catalog.

Public API: the modules listed in ``__all__``; everything in them without a leading underscore.
"""

__all__ = ["catalog", "envelope", "errors", "jsonvalue"]
