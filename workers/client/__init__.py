"""A client of the fleet's HTTP API: ``AsyncClient`` (asyncio) and ``Client`` (blocking), one
implementation on httpx, subscriptions on httpx-sse, retries run by stamina.

Appends always carry a command id made on this side, so a retry is the same command; reads
page, wait for your own writes, and subscribe over Server-Sent Events with resume; the global
read walks every stored event from a position (``global_events``) and follows it
(``subscribe_all``), each event with the position to resume after it; every error
answer is raised as its own exception class, one per code of the fleet's error catalogue
(``workers.client.errors``, generated from it: ``python -m workers.client.codegen``). Typed
event data per domain is generated from the domains' declarations
(``python -m workers.client.codegen events``, see ``workers.client.typed``). It imports nothing
of the server.
"""

from workers.client import errors, models
from workers.client._async import AsyncClient, TokenSource
from workers.client._base import AnswerError, ApiError, ArgumentError, ClientError, TransportError
from workers.client._calls import ToAppend
from workers.client._sync import Client, Stream
from workers.client.backoff import RECONNECT, Backoff, Retrying
from workers.client.models import *  # noqa: F403  (the answers' shapes, all public)
from workers.client.typed import EventData

__all__ = [
    "RECONNECT",
    "AnswerError",
    "ApiError",
    "ArgumentError",
    "AsyncClient",
    "Backoff",
    "Client",
    "ClientError",
    "EventData",
    "Retrying",
    "Stream",
    "ToAppend",
    "TokenSource",
    "TransportError",
    "errors",
]
__all__ += models.__all__  # every answer's shape (workers.client.models)
