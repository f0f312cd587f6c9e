"""Driver errors become ours once, in the MongoDB adapter: a too-large document is Unstorable;
a write the replicas did not confirm in time has an unknown outcome, a bulk write's too."""

from __future__ import annotations

import pytest
from bson.errors import InvalidDocument
from pymongo.errors import (
    BulkWriteError,
    DocumentTooLarge,
    OperationFailure,
    WriteError,
    WTimeoutError,
)

from topics.errors import StoreError, StoreOutcomeUnknown, Unstorable
from workers.adapters.mongo.client import translated


@pytest.mark.parametrize(
    "error",
    [
        DocumentTooLarge("BSON document too large (17647638 bytes)"),  # the driver's own check
        InvalidDocument("cannot encode object"),
        OverflowError("MongoDB can only handle up to 8-byte ints"),
        OperationFailure("object to insert too large", code=10334),  # the server's checks
        WriteError("Resulting document after update is larger than 16777216", code=17419),
        OperationFailure("Document to upsert is larger than 16777216", code=17420),
    ],
)
async def test_a_value_the_store_cannot_hold_is_unstorable(error: Exception) -> None:
    with pytest.raises(Unstorable, match="MongoDB cannot store the value while saving x") as caught:
        async with translated("saving x", write=True):
            raise error
    assert not caught.value.retriable and caught.value.__cause__ is error


async def test_other_refusals_stay_store_errors() -> None:
    with pytest.raises(StoreError, match="MongoDB refused saving x: not authorized"):
        async with translated("saving x", write=True):
            raise OperationFailure("not authorized on db", code=13)


def bulk_error(write_errors: list[dict[str, object]], concern: dict[str, object]) -> BulkWriteError:
    """What pymongo raises for a bulk write the server answered with a write concern error."""
    return BulkWriteError(
        {"writeErrors": write_errors, "writeConcernErrors": [concern], "nInserted": 1}
    )


TIMED_OUT = {
    "code": 64,
    "errmsg": "waiting for replication timed out",
    "errInfo": {"wtimeout": True},
}
DUPLICATE = {"index": 1, "code": 11000, "errmsg": "E11000 duplicate key error"}


@pytest.mark.parametrize(
    "error",
    [
        WTimeoutError("waiting for replication timed out", code=64),  # one write
        bulk_error([], TIMED_OUT),  # a bulk write: the same, in its writeConcernErrors
        bulk_error([DUPLICATE], TIMED_OUT),  # beside a duplicate: still not confirmed
    ],
)
async def test_a_write_the_replicas_did_not_confirm_in_time_has_an_unknown_outcome(
    error: Exception,
) -> None:
    """Applied on the primary, not confirmed by the write concern: it may survive or roll back
    (a bulk write's timeout is seen through pymongo's ``BulkWriteError.timeout``)."""
    with pytest.raises(StoreOutcomeUnknown, match="may or may not have been applied"):
        async with translated("appending 2 events", write=True):
            raise error


async def test_a_write_concern_the_server_cannot_meet_is_a_refusal() -> None:
    unsatisfiable = {"code": 100, "errmsg": "Not enough data-bearing nodes"}
    with pytest.raises(StoreError, match="MongoDB refused appending 2 events") as caught:
        async with translated("appending 2 events", write=True):
            raise bulk_error([], unsatisfiable)
    assert not isinstance(caught.value, StoreOutcomeUnknown)
