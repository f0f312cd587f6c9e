"""The process managers' calls without I/O (see ``_calls``): list them, page their instances,
show one, list pending deadlines, retry a stuck instance."""

from __future__ import annotations

from urllib.parse import quote

import msgspec
import orjson

from workers.client._base import ArgumentError
from workers.client._wire import Call, Op, given
from workers.client.models import InstancePage, PendingDeadline, ProcessInstance, ProcessSummary

__all__ = [
    "process_deadlines",
    "process_instance",
    "process_instances",
    "processes",
    "retry_instance",
]

STATUSES = ("active", "done", "stuck", "retrying")


class _Listed(msgspec.Struct, frozen=True):
    processes: tuple[ProcessSummary, ...]


class _Deadlines(msgspec.Struct, frozen=True):
    deadlines: tuple[PendingDeadline, ...]


def processes() -> Op[tuple[ProcessSummary, ...]]:
    """``GET /v1/processes``: every process manager the fleet enables (viewers)."""
    answer = yield Call("GET", "/v1/processes")
    return answer.decode(_Listed).processes


def process_instances(
    process: str, *, status: str | None = None, after: str | None = None, limit: int = 50
) -> Op[InstancePage]:
    """``GET /v1/processes/{process}/instances``: a page of at most ``limit`` (1-500) instances
    by key, after the key ``after`` (a page's ``next_after``), of ``status`` if given."""
    if status is not None and status not in STATUSES:
        raise ArgumentError(f"status {status!r} is none of {', '.join(STATUSES)}.")
    query = {"limit": str(limit), **given(status=status, after=after)}
    answer = yield Call("GET", _path(process, "instances"), query)
    return answer.decode(InstancePage)


def process_instance(process: str, key: str) -> Op[ProcessInstance]:
    """``GET /v1/processes/{process}/instances/{key}``: one instance (``NotFoundError``: none)."""
    answer = yield Call("GET", _path(process, "instances", _key(key)))
    return answer.decode(ProcessInstance)


def process_deadlines(process: str, *, limit: int = 50) -> Op[tuple[PendingDeadline, ...]]:
    """``GET /v1/processes/{process}/deadlines``: pending deadlines, the soonest first."""
    answer = yield Call("GET", _path(process, "deadlines"), {"limit": str(limit)})
    return answer.decode(_Deadlines).deadlines


def retry_instance(process: str, key: str, *, operator: str | None = None) -> Op[ProcessInstance]:
    """``POST …/instances/{key}/retry``: ask the fleet to retry a stuck instance (operators);
    the instance, now ``retrying``. ``InstanceNotStuckError`` when it is not stuck: its body's
    ``instance_status`` ``retrying`` means the retry is under way (an earlier try of this very
    call may have asked it before its answer was lost). ``operator``: with the door open only."""
    payload = orjson.dumps(given(operator=operator))
    answer = yield Call("POST", _path(process, "instances", _key(key), "retry"), body=payload)
    return answer.decode(ProcessInstance)


def _key(key: str) -> str:
    if not key:
        raise ArgumentError("key is empty; name the instance (e.g. the order id).")
    return quote(key, safe="")


def _path(process: str, *tail: str) -> str:
    if not process:
        raise ArgumentError("process is empty; name a process manager (e.g. 'order_lifecycle').")
    return "/".join(("/v1/processes", quote(process, safe=""), *tail))
