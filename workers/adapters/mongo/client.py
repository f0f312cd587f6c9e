"""The MongoDB client of a process and the one translation of driver errors into ours."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC
from urllib.parse import unquote, urlsplit

from bson.codec_options import CodecOptions
from bson.errors import InvalidDocument
from pymongo import AsyncMongoClient, WriteConcern
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import (
    AutoReconnect,
    ConnectionFailure,
    ExecutionTimeout,
    NetworkTimeout,
    PyMongoError,
    ServerSelectionTimeoutError,
    WTimeoutError,
)

from topics.errors import ConfigError, StoreError, StoreOutcomeUnknown, StoreUnavailable, Unstorable
from topics.jsonvalue import JsonObject
from workers.secrets import mask_url, redact

Document = JsonObject
MongoClient = AsyncMongoClient[Document]
log = logging.getLogger(__name__)

DURABLE = WriteConcern(w="majority", j=True)
"""A write is acknowledged only once journaled: an acknowledged event survives a crash."""


def durable(db: AsyncDatabase[Document], name: str) -> AsyncCollection[Document]:
    """The collection ``name``, written with ``DURABLE``."""
    return db.get_collection(name, write_concern=DURABLE)


_UNAVAILABLE = (
    AutoReconnect,
    ConnectionFailure,
    ExecutionTimeout,
    NetworkTimeout,
    ServerSelectionTimeoutError,
    WTimeoutError,
)


def connect(url: str, *, timeout_ms: int) -> AsyncMongoClient[Document]:
    """One client per event loop; create it inside the loop that uses it.

    ``timeout_ms`` bounds one whole store call (``timeoutMS``: server selection, connection
    and the operation together), so EVENTFLEET_MONGO_TIMEOUT_MS=5000 means 5 s, not more.
    A malformed URL is refused here with the URL masked: it may carry a password.
    """
    try:
        return AsyncMongoClient(
            url,
            serverSelectionTimeoutMS=timeout_ms,
            connectTimeoutMS=timeout_ms,
            timeoutMS=timeout_ms,
            tz_aware=True,
            tzinfo=UTC,
        )
    except (PyMongoError, ValueError, TypeError) as e:
        raise ConfigError(
            f"EVENTFLEET_MONGO_URL={mask_url(url)!r} is not a usable MongoDB connection string "
            f"({redact(str(e), *_url_passwords(url))}); see the MongoDB connection string format."
        ) from None


def _url_passwords(url: str) -> list[str]:
    """The password of ``url``, raw and percent-decoded, so no message repeats either."""
    raw = urlsplit(url).password
    return [raw, unquote(raw)] if raw else []


def database(client: AsyncMongoClient[Document], name: str) -> AsyncDatabase[Document]:
    return client.get_database(name, codec_options=CodecOptions(tz_aware=True, tzinfo=UTC))


@asynccontextmanager
async def translated(what: str, *, write: bool = False) -> AsyncIterator[None]:
    """Turn driver errors into ours, once: the message is a sentence, the detail goes to the log.

    Unavailable errors are retriable; for a ``write`` they mean the outcome is unknown (the
    write may have been sent and applied: StoreOutcomeUnknown). A value that cannot be
    stored (an integer beyond 64 bits, a document over 16 MB) is Unstorable; anything else
    the server refuses is a StoreError.
    """
    try:
        yield
    except (OverflowError, InvalidDocument) as e:  # DocumentTooLarge is an InvalidDocument
        raise Unstorable(f"MongoDB cannot store the value while {what}: {e}.") from e
    except _UNAVAILABLE as e:
        log.debug("MongoDB error while %s: %s", what, redact(repr(e)))
        raise _unavailable(what, write) from e
    except PyMongoError as e:
        if _code(e) in _TOO_LARGE:
            raise Unstorable(
                f"MongoDB cannot store the value while {what}: {_first_line(e)}"
            ) from e
        if (
            e.has_error_label("TransientTransactionError")
            or e.has_error_label("RetryableWriteError")
            or getattr(e, "timeout", False)
        ):
            log.debug("MongoDB error while %s: %s", what, redact(repr(e)))
            raise _unavailable(what, write) from e
        raise StoreError(f"MongoDB refused {what}: {_first_line(e)}") from e


_TOO_LARGE = frozenset({10334, 17419, 17420})
"""Server codes for a document over the BSON limit (BSONObjectTooLarge, and an update or
upsert whose result would be): the driver's own size check misses those it cannot see."""


def _code(error: PyMongoError) -> int | None:
    details = getattr(error, "details", None)
    if isinstance(details, dict) and details.get("writeErrors"):
        code = details["writeErrors"][0].get("code")
        return code if isinstance(code, int) else None
    code = getattr(error, "code", None)
    return code if isinstance(code, int) else None


def _unavailable(what: str, write: bool) -> StoreUnavailable:
    if write:
        return StoreOutcomeUnknown(
            f"MongoDB did not answer while {what}; the write may or may not have been applied."
        )
    return StoreUnavailable(f"MongoDB did not answer while {what}.")


def _first_line(error: PyMongoError) -> str:
    """The server's own sentence (the first write error's, for a bulk write), not the driver's."""
    details = getattr(error, "details", None)
    if isinstance(details, dict):
        write_errors = details.get("writeErrors") or []
        if write_errors and write_errors[0].get("errmsg"):
            return str(write_errors[0]["errmsg"])[:300]
        if details.get("errmsg"):
            return str(details["errmsg"])[:300]
    return str(error).split(", full error:")[0].splitlines()[0][:300]


def escaped(error: BaseException) -> StoreUnavailable | None:
    """A driver error that reached the top untranslated (a tool's own client), as ours; else
    None."""
    if not isinstance(error, PyMongoError):
        return None
    return StoreUnavailable(
        f"MongoDB failed: {type(error).__name__}: {error}; check EVENTFLEET_MONGO_URL and that "
        "the server runs"
    )
