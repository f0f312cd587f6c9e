"""One exception class per code of the fleet's error catalogue. Generated: do not edit.

Made by ``python -m workers.client.codegen`` from ``ERROR_CODES`` in workers/runtime/error_codes.py;
tests/unit/test_client_errors.py fails when they drift. Each docstring is the code's cause and fix.
"""

from workers.client._base import ApiError


class BadRequestError(ApiError, code="bad_request", status=400):
    """400 ``bad_request``: the request is malformed: the body is not a JSON object, a field is
    unknown or of the wrong type, a path segment or query parameter is out of its form or range,
    a time has no UTC offset or a ``+`` that became a space, or ``at_version`` and ``as_of`` are
    both given. Fix: correct what the message names; in a URL write a time's ``+`` as ``%2B``, or
    use ``Z``.
    """


class InvalidCommandError(ApiError, code="invalid_command", status=400):
    """400 ``invalid_command``: a record on the commands topic is not a valid command (answered on
    ``commands.replies``). Fix: produce ``{aggregate_type, aggregate_id, type, data, ...}`` as
    the message says.
    """


class RouteNotFoundError(ApiError, code="route_not_found", status=404):
    """404 ``route_not_found``: no route has this path (a typo, a trailing slash, a domain route
    whose domain is not enabled). Fix: use a route of the HTTP API; the message lists the routes
    this process serves.
    """


class UnknownAggregateTypeError(ApiError, code="unknown_aggregate_type", status=404):
    """404 ``unknown_aggregate_type``: no domain of this aggregate type is enabled (on ``/events``
    and ``/snapshot``: and nothing is stored under it). Fix: use one of the enabled types the
    message lists, or enable the domain (``EVENTFLEET_DOMAINS``).
    """


class NotFoundError(ApiError, code="not_found", status=404):
    """404 ``not_found``: the aggregate has no events (at that point in time), no snapshot yet, or
    nothing is known of the command or event asked about. Fix: check the id; for ``/snapshot``,
    read ``/state`` (it needs no snapshot); for ``as_of``, ask for a later time.
    """


class VersionNotFoundError(ApiError, code="version_not_found", status=404):
    """404 ``version_not_found``: ``at_version`` is past the aggregate's newest version. Fix: ask
    for at most the version the message names, or leave ``at_version`` out.
    """


class HistoryCompactedError(ApiError, code="history_compacted", status=410):
    """410 ``history_compacted``: versions the read needs are stored nowhere any more (archived
    history that was lost, or an archive that was dropped): ``/events`` or a subscription
    starting at such a hole (a page ends before one, ``more`` true), or a state or domain read
    that would fold or page across it; ``whole_from`` names the first version after the hole,
    ``after_version`` where the read began; nothing is skipped silently. Fix: read on from
    ``whole_from`` (``after_version`` = ``whole_from`` - 1) knowing the versions before it are
    gone, or restore the archive (``events_archive``) from a backup.
    """


class PositionOutdatedError(ApiError, code="position_outdated", status=410):
    """410 ``position_outdated``: a position of ``GET /v1/events`` (``after``, ``Last-Event-ID``)
    that the stored-event log cannot continue from: it counts another number of partitions than
    ``events.stored`` has now (the topic was repartitioned, so aggregates moved between
    partitions), or names an offset before the first record a partition keeps or past its end
    (records deleted, or the topic recreated); nothing is skipped or repeated silently. Fix: read
    again from the beginning (no ``after``) and rebuild what was built from the old position.
    """


class MethodNotAllowedError(ApiError, code="method_not_allowed", status=405):
    """405 ``method_not_allowed``: the route exists but not with this method (a ``POST`` to a query
    route, or to ``/events`` on a process without the commands role). Fix: use one of
    ``allowed_methods`` (also in the ``Allow`` header).
    """


class ReadOnlyError(ApiError, code="read_only", status=405):
    """405 ``read_only``: an append to a storage domain, whose documents change only through
    EventSourcedStorage. Fix: change the document through EventSourcedStorage.
    """


class UnauthenticatedError(ApiError, code="unauthenticated", status=401):
    """401 ``unauthenticated``: the request names no principal the fleet can verify: no token, or
    one that is expired, not yet valid, for another issuer or audience, signed by an unknown key
    or algorithm, tampered with, without ``sub``, too large or malformed; two ``Authorization``
    headers; proxy headers from an address not in ``EVENTFLEET_AUTH_TRUSTED_PROXIES``; a
    ``?ticket=`` that is empty, malformed, too large, unknown, expired or used (``reason`` says
    which; ``WWW-Authenticate`` is set). Fix: send ``Authorization: Bearer <token>`` with a valid
    token from the configured issuer (or log in to the console).
    """


class ForbiddenError(ApiError, code="forbidden", status=403):
    """403 ``forbidden``: the authenticated principal may not do this: the domain's access rule
    refuses the event type or the read, the body names another principal or a role, the message
    is someone else's, the console action needs the operator role (a record on the fleet's own
    topics the admin role too: ``admin_role_required``), or a console form's CSRF token is
    missing or wrong, or a ticket is for another route or principal (``reason`` says which);
    nothing was written. Fix: act as a principal the rule allows (roles come from the token), or
    reload the console page and submit again.
    """


class ConsoleReadOnlyError(ApiError, code="console_read_only", status=403):
    """403 ``console_read_only``: an operator action (a dead-letter replay in the console, erasing a
    subject) on a process whose operator actions are off. Fix: set
    ``EVENTFLEET_CONSOLE_ACTIONS=true`` on the process operators use (or ``eventfleet erase``).
    """


class ConsumerGroupActiveError(ApiError, code="consumer_group_active", status=409):
    """409 ``consumer_group_active``: a console reset of a consumer group's offsets while the group
    has members (``members`` names them): a member would go on from where it stands and commit
    over the reset; nothing was changed. Fix: stop the group's consumers (or wait until they
    leave the group) and reset again.
    """


class CrossOriginError(ApiError, code="cross_origin", status=403):
    """403 ``cross_origin``: a state-changing request (``POST``, ``PUT``, ``PATCH``, ``DELETE``) or
    a WebSocket upgrade from another site's page, in any auth mode: ``Sec-Fetch-Site`` other than
    ``same-origin``, or an ``Origin`` that is not the fleet's own nor in
    ``EVENTFLEET_ALLOWED_ORIGINS`` (``reason``: ``cross_site``, ``foreign_origin`` or
    ``opaque_origin``); nothing was read or changed. Fix: act from the fleet's own pages, call
    from a script or server (no browser headers), or add the page's origin to
    ``EVENTFLEET_ALLOWED_ORIGINS``.
    """


class TransitionRejectedError(ApiError, code="transition_rejected", status=409):
    """409 ``transition_rejected``: the domain's rules refuse this event after the aggregate's
    ``current`` one: a declared transition (``allowed``: the types it may follow, ``none`` for a
    new aggregate) or, in sync mode, the state's own rule (no ``allowed``; the message says why).
    Fix: send an event that may follow ``current``, or re-read the state.
    """


class TransitionRejectedAtStoreError(ApiError, code="transition_rejected_at_store", status=409):
    """409 ``transition_rejected_at_store``: the event was accepted (202) but the store, judging it
    against the last stored event, refused it (a stale or racing view); a retry of the command is
    told so. Fix: re-read the aggregate and send the event that fits now.
    """


class WrongExpectedVersionError(ApiError, code="wrong_expected_version", status=409):
    """409 ``wrong_expected_version``: the request's ``expected_version`` is not the aggregate's
    version (``current_version``): another writer appended first, ``0`` was sent for an aggregate
    that exists, or the expectation is ahead of it; nothing was written. In async mode also after
    a 202, when the store, judging the event, found its head at another version (told to a retry
    of the command and by ``GET …/outcome``). Fix: read the aggregate again (its state and
    version), decide again, and send the new decision with the version read and a new
    ``command_id``.
    """


class ForbiddenAtStoreError(ApiError, code="forbidden_at_store", status=403):
    """403 ``forbidden_at_store``: the event reached the store but its actor (``metadata.actor``)
    may not send it after the state at its predecessor: a chat edit or delete of another's
    message, a ``sender_id`` or ``role`` its token does not hold, or no actor at all (produced to
    a topic outside the HTTP door); nothing was stored, and a retry of the command is told so.
    Fix: send it through the HTTP API as a principal the domain's rule allows.
    """


class AlreadyReplayedError(ApiError, code="already_replayed", status=409):
    """409 ``already_replayed``: the dead letter was replayed before with other fields (another
    aggregate, type or data); a dead letter is replayed once, so nothing was applied. Fix: read
    ``first_replay`` (who, when, what, its answer); send a new command for anything else.
    """


class ConflictError(ApiError, code="conflict", status=409, retriable=True):
    """409 ``conflict``: other writers kept winning the next version (sync mode); nothing was
    written. Fix: retry.
    """


class InstanceNotStuckError(ApiError, code="instance_not_stuck", status=409):
    """409 ``instance_not_stuck``: a retry of a process manager's instance that is not stuck
    (active, done, or its retry is under way). Fix: look at the instance first (``GET
    /v1/processes/{process}/instances/{key}`` or ``eventfleet pm show``): only a stuck one is
    retried, and a retry under way needs none.
    """


class CommandReusedError(ApiError, code="command_reused", status=409):
    """409 ``command_reused``: an append across aggregates came with a command id an earlier request
    used for other aggregates: some of the events it names are stored and some are not; nothing
    was written. Fix: a retry sends exactly the items it sent before; send new work under a new
    ``command_id``.
    """


class CommandInProgressError(ApiError, code="command_in_progress", status=409, retriable=True):
    """409 ``command_in_progress``: another request with the same ``command_id`` is still running.
    Fix: retry after a moment with the same ``command_id``.
    """


class RefusedError(ApiError, code="refused", status=409):
    """409 ``refused``: a read waited for a command's event (``command_id``) that the store refused;
    it will never be stored (``reason`` says why). Fix: re-read the aggregate and send the event
    that fits now.
    """


class PayloadTooLargeError(ApiError, code="payload_too_large", status=413):
    """413 ``payload_too_large``: the body is over ``EVENTFLEET_MAX_BODY_BYTES``; the message gives
    its size (or says it is more than a bound it read up to). Fix: send a smaller body, or raise
    the limit.
    """


class RequestTimeoutError(ApiError, code="request_timeout", status=408):
    """408 ``request_timeout``: the request body was not whole ``EVENTFLEET_BODY_TIMEOUT_S`` after
    the request began (a sender that stalled or stopped short); nothing was changed. Fix: send
    the whole body without pausing, as many bytes as ``Content-Length`` says.
    """


class UnsupportedMediaTypeError(ApiError, code="unsupported_media_type", status=415):
    """415 ``unsupported_media_type``: a JSON route (``POST …/events``, ``POST
    /v1/subjects/{subject}/erase``) got a body whose ``Content-Type`` is not ``application/json``
    or ``application/*+json`` (``text/plain``, a form, none); nothing was read or changed. Fix:
    send ``Content-Type: application/json`` (curl: ``-H 'Content-Type: application/json'`` or
    ``--json``).
    """


class NotAcceptableError(ApiError, code="not_acceptable", status=406):
    """406 ``not_acceptable``: a live subscription asked for neither Server-Sent Events (``Accept:
    text/event-stream``) nor a WebSocket upgrade. Fix: send ``Accept: text/event-stream``, or
    open a WebSocket.
    """


class TooManySubscriptionsError(
    ApiError, code="too_many_subscriptions", status=429, retriable=True
):
    """429 ``too_many_subscriptions``: the process serves ``EVENTFLEET_LIVE_MAX_CONNECTIONS`` live
    subscriptions, or the client holds ``EVENTFLEET_LIVE_MAX_PER_PRINCIPAL`` of them (``limit``
    says which). Fix: close a subscription, or retry later or on another process
    (``retry_after_s``).
    """


class TooManyWaitersError(ApiError, code="too_many_waiters", status=429, retriable=True):
    """429 ``too_many_waiters``: a read asked to wait for its writes (``min_version``,
    ``command_id``) while the process has ``EVENTFLEET_RYW_MAX_WAITERS`` reads waiting, or the
    principal ``EVENTFLEET_RYW_MAX_WAITERS_PER_PRINCIPAL`` (``limit`` says which); nothing
    waited. Fix: let a waiting read end, or retry after ``Retry-After`` (``retry_after_s``) or on
    another process.
    """


class TooManyWritesError(ApiError, code="too_many_writes", status=429, retriable=True):
    """429 ``too_many_writes``: the principal's write budget is spent: more appends than its rate a
    second (``EVENTFLEET_WRITE_BUDGET_PER_S``, or its own or its role's in
    ``EVENTFLEET_WRITE_BUDGET_PRINCIPALS``, ``_ROLES``) beyond its burst, counted across every
    commands process; nothing was claimed, marked or written. Fix: retry after ``Retry-After``
    (``retry_after_s``), with the same ``command_id``; spread the writes, or ask an operator for
    a larger budget.
    """


class TooManyTicketsError(ApiError, code="too_many_tickets", status=429, retriable=True):
    """429 ``too_many_tickets``: the principal holds ``EVENTFLEET_TICKETS_PER_PRINCIPAL`` tickets
    (each counts for minutes past its expiry, used or not), or the fleet
    ``EVENTFLEET_TICKETS_MAX_HELD`` (``limit``: ``principal`` or ``fleet``); no ticket was
    issued. Fix: open a connection with a ticket you hold, or ask again after ``Retry-After``
    (``retry_after_s``).
    """


class UnknownEventTypeError(ApiError, code="unknown_event_type", status=422):
    """422 ``unknown_event_type``: the domain has no such event type. Fix: use one of the types the
    message lists.
    """


class InvalidDataError(ApiError, code="invalid_data", status=422):
    """422 ``invalid_data``: the data does not match the event type's schema, or a number does not
    fit 64 bits (also when the store refused an accepted event for it). Fix: correct the field
    the message names.
    """


class AsyncDomainError(ApiError, code="async_domain", status=422):
    """422 ``async_domain``: an append across aggregates (``POST /v1/appends``) named an item of an
    async domain: its events are stored by the appender after Kafka, one aggregate at a time, so
    no transaction can hold them with others (``item`` names it); nothing was written. Fix: send
    the async domain's event on its own (``POST /v1/{type}/{id}/events``) once the sync ones are
    stored, or let a consumer of their stored events send it.
    """


class DeadLetteredError(ApiError, code="dead_lettered", status=422):
    """422 ``dead_lettered``: the event was accepted (202) but the appender could not take it and
    dead-lettered it (``reason``: a type, schema version or mode this appender does not know yet,
    a record over its ``EVENTFLEET_MAX_EVENT_BYTES``, bytes it cannot read); nothing was stored,
    and a retry of the command is told so. Fix: an operator replays the dead letter once the
    appender can take it (``eventfleet dlq``), or send a corrected command with a new
    ``command_id``.
    """


class ReplayFailedError(ApiError, code="replay_failed", status=500):
    """500 ``replay_failed``: the domain's reducer or an upcaster cannot fold this aggregate's
    history. Fix: fix the reducer or upcaster; other aggregates are not affected.
    """


class InternalError(ApiError, code="internal", status=500):
    """500 ``internal``: an unexpected error in the fleet (a bug). Fix: report it with the message;
    the process log has the traceback.
    """


class TransactionsUnsupportedError(ApiError, code="transactions_unsupported", status=501):
    """501 ``transactions_unsupported``: an append across aggregates needs a MongoDB transaction and
    the store is a standalone mongod, which runs none; nothing was written. Fix: run MongoDB as a
    replica set (one member will do), or append to each aggregate on its own.
    """


class StoreUnavailableError(ApiError, code="store_unavailable", status=503, retriable=True):
    """503 ``store_unavailable``: MongoDB did not answer in time; nothing was written. Fix: retry
    (safe).
    """


class MarkerUnavailableError(ApiError, code="marker_unavailable", status=503, retriable=True):
    """503 ``marker_unavailable``: Redis did not answer in time; nothing was written. Fix: retry
    (safe).
    """


class StreamUnavailableError(ApiError, code="stream_unavailable", status=503, retriable=True):
    """503 ``stream_unavailable``: Kafka did not acknowledge in time; nothing was handed to it. Fix:
    retry (safe).
    """


class DependencyUnavailableError(
    ApiError, code="dependency_unavailable", status=503, retriable=True
):
    """503 ``dependency_unavailable``: a dependency did not answer in time; nothing was written.
    Fix: retry (safe).
    """


class OutcomeUnknownError(ApiError, code="outcome_unknown", status=503, retriable=True):
    """503 ``outcome_unknown``: a write was sent and not answered in time; it may still be stored.
    Fix: retry with the same ``command_id``, or ask ``GET .../outcome`` first.
    """


class StoreCatchingUpError(ApiError, code="store_catching_up", status=503, retriable=True):
    """503 ``store_catching_up``: the marker refused the event, but the store has not yet decided
    every event it may follow (the appender is behind, or the marker lost its state): neither a
    202 nor a 409 would be sure; nothing was written. Fix: retry in a moment (``retry_after_s``).
    """


class ShuttingDownError(ApiError, code="shutting_down", status=503, retriable=True):
    """503 ``shutting_down``: this worker is draining. Fix: retry on another worker."""


class NotYetStoredError(ApiError, code="not_yet_stored", status=504, retriable=True):
    """504 ``not_yet_stored``: a read asked for ``min_version`` (or a ``command_id``'s event) that
    was not stored, or not yet in the view, within its ``wait_ms``; ``stored_version`` says what
    is. Fix: ask again, or with a longer ``wait_ms`` (at most 30000).
    """
