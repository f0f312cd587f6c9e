"""The operator audit trail in MongoDB: one document per confirmed console or CLI action."""

from __future__ import annotations

from collections.abc import Mapping

import orjson
from pymongo import DESCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from topics.errors import StoreError
from topics.jsonvalue import Json
from workers.adapters.mongo.client import Document, durable, translated
from workers.ports import OperatorAction, ReplayClaim

ACTIONS = "console_audit"
REPLAYS = "dlq_replays"


class MongoActionLog:
    """``ActionLog`` on the ``console_audit`` collection; payloads kept as JSON text.

    The submitted payload and the answer are stored as JSON strings: an event's data may
    hold keys MongoDB treats specially (``$``-prefixed), and the trail must keep them as sent.
    """

    def __init__(
        self, db: AsyncDatabase[Document], *, collection: str = ACTIONS, replays: str = REPLAYS
    ) -> None:
        self.collection = durable(db, collection)
        self.replays = durable(db, replays)

    async def claim_replay(self, claim: ReplayClaim) -> ReplayClaim | None:
        try:
            async with translated(f"claiming the replay of dead letter {claim.target}", write=True):
                await self.replays.insert_one(_claim_document(claim))
            return None
        except StoreError as e:
            if not isinstance(e.__cause__, DuplicateKeyError):
                raise
        async with translated(f"reading the first replay of dead letter {claim.target}"):
            found = await self.replays.find_one({"_id": claim.target})
        if found is None:  # removed in between (by hand): claim it again
            return await self.claim_replay(claim)
        return ReplayClaim(
            target=found["_id"],
            submitted=orjson.loads(found["submitted"]),
            operator=found["operator"],
            at=found["at"],
            status=found.get("status"),
            result=orjson.loads(found["result"]) if "result" in found else None,
        )

    async def abandon_replay(self, claim: ReplayClaim) -> None:
        async with translated(f"releasing the replay of dead letter {claim.target}", write=True):
            await self.replays.delete_one(_claim_document(claim))  # only if still this claim

    async def settle_replay(self, target: str, status: int, result: Mapping[str, Json]) -> None:
        update = {"$set": {"status": status, "result": orjson.dumps(result).decode()}}
        async with translated(f"recording the first replay of {target}", write=True):
            await self.replays.update_one({"_id": target}, update)

    async def record(self, action: OperatorAction) -> None:
        doc = {
            "at": action.at,
            "operator": action.operator,
            "via": action.via,
            "action": action.action,
            "target": action.target,
            "submitted": orjson.dumps(action.submitted).decode(),
            "status": action.status,
            "result": orjson.dumps(action.result).decode(),
        }
        async with translated(f"recording operator action {action.id}", write=True):
            await self.collection.update_one({"_id": action.id}, {"$setOnInsert": doc}, upsert=True)

    async def recent(self, *, limit: int) -> list[OperatorAction]:
        async with translated("reading the operator audit trail"):
            cursor = self.collection.find().sort([("at", DESCENDING), ("_id", DESCENDING)])
            docs = await cursor.limit(limit).to_list()
        return [
            OperatorAction(
                id=doc["_id"],
                at=doc["at"],
                operator=doc["operator"],
                via=doc["via"],
                action=doc["action"],
                target=doc["target"],
                submitted=orjson.loads(doc["submitted"]),
                status=doc["status"],
                result=orjson.loads(doc["result"]),
            )
            for doc in docs
        ]


def _claim_document(claim: ReplayClaim) -> Document:
    """A replay claim as stored, and the filter ``abandon_replay`` deletes by: every field must
    match, so it removes only the claim it was given."""
    return {
        "_id": claim.target,
        "submitted": orjson.dumps(claim.submitted).decode(),
        "operator": claim.operator,
        "at": claim.at,
    }
