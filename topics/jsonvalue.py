"""The one alias for JSON-shaped values: what a codec decodes, a store keeps, a route answers.

``Json`` is the only ``Any`` the packages allow outside a short, shrinking list of modules
(tests/unit/test_typing_hygiene.py holds it). Everything else is typed: wiring takes real
classes or Protocols, never ``Any``.

``Json`` is ``Any`` on purpose, not the recursive union
``bool | int | float | str | list[Json] | dict[str, Json] | None``: a decoded document is read
through many levels (``state["items"][sku]["qty"] + 1``) by reducers, queries and views, and the
union would demand an ``isinstance`` at every level of every read, in user code too. The values
are checked once, where they enter: the envelope codec and the per-event-type schemas
(``snapshot_rules.schema``). The name still tells a reader which values are JSON, and lets the
test tell a JSON edge from an ``Any`` that hides a type.
"""

from __future__ import annotations

from typing import Any, TypeAlias

__all__ = ["Json", "JsonObject"]

Json: TypeAlias = Any
"""A JSON value as Python holds it: dict, list, str, int, float, bool or None (BSON documents too)."""

JsonObject: TypeAlias = dict[str, Json]
"""A JSON object: an event's data, a state, a stored document, a response body."""
