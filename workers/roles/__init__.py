"""Role logic: plain async code over the ports (no Faust, no driver), grouped by the side it serves.

- ``command``: a request validated, marked or checked on state, answered truly (``commands``
  dispatching by mode to ``async_mode`` or ``sync_mode``, ``intake``, ``fate``, ``requests``,
  ``refusals``, ``ledger``, ``resolver``, ``newfilter``).
- ``append``: the store judging each requested event, then publishing it (``appender``, ``judge``,
  ``fates``, ``outbox``, ``forwarder``, ``bridge``).
- ``read``: what readers see (``live``, ``paging``, ``projections``, ``snapshotter``).
- ``ops``: jobs an operator runs (``archive``, ``audit``, ``dlq_replay``).
- ``process``: process managers at work, beside ``ops`` above the sides: stored events and due
  deadlines react through the instances' ``steps``, the ``runner`` sends their commands through
  the command door, and the ``desk`` lists, shows and retries them.

What every side shares sits here: ``outcomes`` (what became of a command), ``state`` (an
aggregate's state loaded), ``personal`` (crypto-shredding), ``deadletter`` and ``retry`` (how a
consumer role treats poison input and a dependency that is down). The sides import this floor,
never each other, and ``ops`` and ``process`` sit above them.

Public API: the modules and sub-packages in ``__all__``; the runtime composes them, tests drive
them alone.
"""

__all__ = [
    "append",
    "command",
    "deadletter",
    "ops",
    "outcomes",
    "personal",
    "process",
    "read",
    "retry",
    "state",
]
