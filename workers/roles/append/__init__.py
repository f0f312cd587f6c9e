"""The append side: the store judges each requested event, stores it, and publishes what it stored.

Public API: the modules in ``__all__``.
"""

__all__ = ["appender", "bridge", "fates", "forwarder", "judge", "outbox"]
