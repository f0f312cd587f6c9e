"""CQRS commands dispatched to aggregates kept in ``EventSourcedStorage``.

A quick start::

    users = EventSourcedStorage(
        MongoDocuments(db, "users"), events=ChangeEvents(type_prefix="User"), bus=bus
    )
    factory = AggregateFactory()
    factory.register("users", lambda user_id: {"name": "", "email": ""})
    dispatcher = Dispatcher()
    dispatcher.register("CreateUser", DocumentHandler(users, create_user, factory=factory,
                                                      create=True))
    await bus.subscribe("UserCreated", welcome)
    await dispatcher.dispatch(new_command("CreateUser", "user123", {"name": ..., "email": ...}))

A handler loads the aggregate (the stored document, or a new one from the factory), lets the
command's ``decide`` return the new document, and stores it with the storage's optimistic
concurrency: if another writer changed the document first, the storage runs ``decide`` again
on the new version. The storage writes the one event of the change (``UserCreated``,
``UserUpdated``), publishes it and its mapper's events (``UserEmailChanged``) on its bus, and
hands it to events.stored (its outbox, or the fleet's relay).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from topics.errors import UnknownAggregateType
from workers.cqrs.commands import Command
from workers.cqrs.handlers import Handled
from workers.storage import documents as docs
from workers.storage.ports import Document
from workers.storage.storage import EventSourcedStorage

C = TypeVar("C", bound=Command)


class AggregateFactory:
    """Makes the document a command starts from when its aggregate does not exist yet."""

    def __init__(self) -> None:
        self._makers: dict[str, Callable[[str], Document]] = {}

    def register(self, collection: str, make: Callable[[str], Document]) -> None:
        """``make(aggregate_id)`` returns a new aggregate's document (without
        ``_id``/``version``)."""
        if collection in self._makers:
            raise ValueError(f"the factory already makes {collection} aggregates")
        self._makers[collection] = make

    def create(self, collection: str, aggregate_id: str) -> Document:
        make = self._makers.get(collection)
        if make is None:
            raise UnknownAggregateType(
                f"the aggregate factory makes no {collection} aggregates; register one with "
                f"factory.register({collection!r}, lambda aggregate_id: {{...}})."
            )
        return dict(make(aggregate_id))


@dataclass(frozen=True, slots=True)
class DocumentAggregate:
    """One aggregate as a command sees it: its id, stored version (0: new) and its document."""

    id: str
    version: int
    document: Document

    @property
    def new(self) -> bool:
        return self.version == 0


Decide = Callable[[DocumentAggregate, C], Document]
"""Returns the aggregate's new document (a changed copy); raises to refuse the command."""


class DocumentHandler(Generic[C]):
    """Handles one command on aggregates stored in one EventSourcedStorage collection."""

    def __init__(
        self,
        storage: EventSourcedStorage,
        decide: Decide[C],
        *,
        factory: AggregateFactory | None = None,
        create: bool = False,
        client_id: str = "cqrs",
    ) -> None:
        """``create``: a missing aggregate is made by ``factory`` (or starts empty) instead of
        NotFound. ``client_id``: recorded on the event unless the command's metadata names one."""
        self._storage = storage
        self._decide = decide
        self._factory = factory
        self._create = create
        self._client_id = client_id

    async def __call__(self, command: C) -> Handled:
        collection = self._storage.collection_name

        def edit(current: Document | None) -> Document:
            if current is None:  # only with create=True: the storage says it does not exist
                start = (
                    self._factory.create(collection, command.aggregate_id) if self._factory else {}
                )
                return self._decide(DocumentAggregate(command.aggregate_id, 0, start), command)
            field = self._storage.version_field
            content = docs.content_of(current, field)
            aggregate = DocumentAggregate(command.aggregate_id, int(current[field]), content)
            decided = self._decide(aggregate, command)
            return {**decided, docs.ID: current[docs.ID], field: current[field]}

        client = command.metadata.client_id or self._client_id
        changed = await self._storage.update(
            command.aggregate_id, edit, client_id=client, create=self._create
        )
        events = () if changed.event is None else (changed.event,)
        return Handled(events, published=changed.published or not events)
