"""The eventfleet runtime: ports and adapters, role logic, Faust agents, HTTP views, metrics, CLI.

Rooms, from the bottom up: ``ports`` and ``metrics``; ``roles`` (logic over the ports) and
``adapters`` (one package per technology); the products ``cqrs``, ``storage`` and ``bus``;
``runtime`` (settings, Faust app, agents, HTTP, lifecycle, composition root); ``devtools``
(embedded services, dev, bench: never imported by production code) and ``client`` (the HTTP
API's client library, which imports nothing of the server); ``cli``; and on top
``examples`` (example domains, commands, storage runs and the demo), which nothing imports.
Public API: the modules and packages in ``__all__``.
"""

__all__ = [
    "adapters",
    "bus",
    "cli",
    "client",
    "cqrs",
    "devtools",
    "metrics",
    "ports",
    "roles",
    "runtime",
    "storage",
]
