"""NATS adapters: the event bus on JetStream; driver errors are translated here, once."""

from __future__ import annotations

from workers.adapters.nats.bus import NatsEventBus

__all__ = ["NatsEventBus"]
