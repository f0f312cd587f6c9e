"""Driver errors become ours once, in the MongoDB adapter: a too-large document is Unstorable."""

from __future__ import annotations

import pytest
from bson.errors import InvalidDocument
from pymongo.errors import DocumentTooLarge, OperationFailure, WriteError

from topics.errors import StoreError, Unstorable
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
