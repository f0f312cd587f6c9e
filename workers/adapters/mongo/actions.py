"""The operator audit trail in MongoDB: one document per confirmed console or CLI action."""

from __future__ import annotations

import orjson
from pymongo import DESCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from workers.adapters.mongo.client import DURABLE, Document, translated
from workers.ports import OperatorAction

ACTIONS = "console_audit"


class MongoActionLog:
    """``ActionLog`` on the ``console_audit`` collection; payloads kept as JSON text.

    The submitted payload and the answer are stored as JSON strings: an event's data may
    hold keys MongoDB treats specially (``$``-prefixed), and the trail must keep them as sent.
    """

    def __init__(self, db: AsyncDatabase[Document], *, collection: str = ACTIONS) -> None:
        self.collection: AsyncCollection[Document] = db.get_collection(
            collection, write_concern=DURABLE
        )

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
