"""Examples built on eventfleet: example domains, their commands, storage runs and the demo.

This room imports the framework and the framework never imports it (the architecture test
holds both); only ``eventfleet dev`` reaches it, by name, when ``EVENTFLEET_DOMAINS`` is unset
(``workers.examples.domains:default_domains``) and for the workload ``eventfleet dev --demo``
runs; a worker never falls back on it.

- ``domains``: order, account, chat room, shopping cart, order book and game log, each with its
  read side (views, query routes).
- ``cqrs``: typed commands of the account and the order book on the CQRS command side.
- ``storage``: a game state several clients share and a user profile, kept as documents on
  ``EventSourcedStorage`` (every change an event), and those collections declared as fleet
  domains.
- ``demo``: the mixed workload of ``eventfleet dev --demo`` and its verification.
"""

__all__ = ["cqrs", "demo", "domains", "storage"]
