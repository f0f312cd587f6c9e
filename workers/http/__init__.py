"""The HTTP room: everything the fleet serves to people and programs over HTTP.

The API (``routes``: append, state, events, snapshot, outcome, erase, the domains' query routes;
``queries``, ``ryw`` (read your writes), ``subjects``), its contract (``contract``, ``openapi*``),
request bodies read whole (``bodies``), every error as JSON (``errors``), probes (``probes``),
browsers' tickets for live routes (``tickets``), live subscriptions and chat (``live/``) and the
operator console (``console/``). The door every request passes is the runtime's
(``workers.runtime.door.auth``): the fleet owns it. The runtime imports nothing from here; the
command that serves hands ``register`` to ``workers.runtime.serve``.
"""

from __future__ import annotations

from workers.http.live.chat import register_chat
from workers.http.live.streams import LiveServer
from workers.http.routes import register_views
from workers.runtime.fleet import Fleet

__all__ = ["register"]


def register(fleet: Fleet) -> None:
    """Every view of ``fleet``'s process: the API, the console, the chat room's live routes
    (before the generic ``/v1/{type}/{id}/subscribe``) and the live subscriptions."""
    register_views(fleet)
    live = LiveServer(fleet)
    register_chat(fleet, live)
    live.register()
