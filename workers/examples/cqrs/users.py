"""The CQRS quick start: the user commands, decided on a document kept in EventSourcedStorage.

dispatcher.register("CreateUser", DocumentHandler(users, create_user, factory=factory,
                                                  create=True))
dispatcher.register("ChangeEmail", DocumentHandler(users, change_email))
"""

from __future__ import annotations

from topics.errors import InvalidInput
from workers.cqrs import DocumentAggregate, NamedCommand
from workers.storage.ports import Document


def create_user(user: DocumentAggregate, command: NamedCommand) -> Document:
    """A new user from the command's payload; refused if the user exists."""
    if not user.new:
        raise InvalidInput(f"user {user.id} exists already (version {user.version})")
    return {**user.document, **command.payload}


def change_email(user: DocumentAggregate, command: NamedCommand) -> Document:
    return {**user.document, "email": command.payload["email"]}
