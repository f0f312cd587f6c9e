"""Order data as the in-process tests write it: ``ITEMS``, the data of an ``OrderPlaced`` of one
tea (the fleets' tests use ``tests.fleet.order_items`` and ``LIFECYCLE``)."""

from __future__ import annotations

from typing import Any

ITEMS: dict[str, Any] = {"items": [{"sku": "tea", "qty": 1, "price": 2}]}
