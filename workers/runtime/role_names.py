"""The names of the fleet's roles, apart from what runs them: ``eventfleet worker --role``
offers them without importing the composition root (``compose.py``), the pm role's runner
(``processes.py``) or the lag exporter (``lag.py``), which take their names from here."""

from __future__ import annotations

PM_ROLE = "pm"
"""The process managers' role: ``all`` runs it too when ``EVENTFLEET_PROCESSES`` names some."""
LAG_ROLE = "lag"
"""Every consumer group's lag, read from the brokers and exported (``workers.runtime.lag``)."""
ROLES = ("commands", "appender", "snapshotter", "forwarder", "projection")
"""Every pipeline role; ``eventfleet dev`` and ``worker --role all`` run them all in one process."""
OPTIONAL_ROLES = ("bridge", PM_ROLE)
"""Roles run only when named (or, for pm, when process managers are enabled): the bridge
republishes events.stored to a Redis or NATS bus."""
