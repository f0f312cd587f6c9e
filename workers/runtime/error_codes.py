"""The one registry of error answers: every error code with the status it is always answered
with, its one cause and its fix. ``workers.runtime.answers`` answers with it; the HTTP reference,
the OpenAPI document and the client's exception classes are generated from it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ErrorCode:
    """One error code: the status it is always answered with, its one cause, and the fix."""

    code: str
    status: int
    cause: str
    fix: str


ERROR_CODES: tuple[ErrorCode, ...] = (
    ErrorCode(
        "bad_request",
        400,
        "the request is malformed: the body is not a JSON object, a field is unknown or of the "
        "wrong type, a path segment or query parameter is out of its form or range, a time has "
        "no UTC offset or a `+` that became a space, or `at_version` and `as_of` are both given",
        "correct what the message names; in a URL write a time's `+` as `%2B`, or use `Z`",
    ),
    ErrorCode(
        "invalid_command",
        400,
        "a record on the commands topic is not a valid command (answered on `commands.replies`)",
        "produce `{aggregate_type, aggregate_id, type, data, ...}` as the message says",
    ),
    ErrorCode(
        "route_not_found",
        404,
        "no route has this path (a typo, a trailing slash, a domain route whose domain is not "
        "enabled)",
        "use a route of the HTTP API; the message lists the routes this process serves",
    ),
    ErrorCode(
        "unknown_aggregate_type",
        404,
        "no domain of this aggregate type is enabled (on `/events` and `/snapshot`: and "
        "nothing is stored under it)",
        "use one of the enabled types the message lists, or enable the domain "
        "(`EVENTFLEET_DOMAINS`)",
    ),
    ErrorCode(
        "not_found",
        404,
        "the aggregate has no events (at that point in time), no snapshot yet, or nothing is "
        "known of the command or event asked about",
        "check the id; for `/snapshot`, read `/state` (it needs no snapshot); for `as_of`, ask "
        "for a later time",
    ),
    ErrorCode(
        "version_not_found",
        404,
        "`at_version` is past the aggregate's newest version",
        "ask for at most the version the message names, or leave `at_version` out",
    ),
    ErrorCode(
        "history_compacted",
        410,
        "versions the read needs are stored nowhere any more (archived history that was lost, "
        "or an archive that was dropped): `/events` or a subscription starting at such a hole "
        "(a page ends before one, `more` true), or a state or domain read that would fold or "
        "page across it; `whole_from` names the first version after the hole, `after_version` "
        "where the read began; nothing is skipped silently",
        "read on from `whole_from` (`after_version` = `whole_from` - 1) knowing the versions "
        "before it are gone, or restore the archive (`events_archive`) from a backup",
    ),
    ErrorCode(
        "position_outdated",
        410,
        "a position of `GET /v1/events` (`after`, `Last-Event-ID`) that the stored-event log "
        "cannot continue from: it counts another number of partitions than `events.stored` has "
        "now (the topic was repartitioned, so aggregates moved between partitions), or names an "
        "offset before the first record a partition keeps or past its end (records deleted, or "
        "the topic recreated); nothing is skipped or repeated silently",
        "read again from the beginning (no `after`) and rebuild what was built from the old "
        "position",
    ),
    ErrorCode(
        "method_not_allowed",
        405,
        "the route exists but not with this method (a `POST` to a query route, or to `/events` "
        "on a process without the commands role)",
        "use one of `allowed_methods` (also in the `Allow` header)",
    ),
    ErrorCode(
        "read_only",
        405,
        "an append to a storage domain, whose documents change only through EventSourcedStorage",
        "change the document through EventSourcedStorage",
    ),
    ErrorCode(
        "unauthenticated",
        401,
        "the request names no principal the fleet can verify: no token, or one that is "
        "expired, not yet valid, for another issuer or audience, signed by an unknown key or "
        "algorithm, tampered with, without `sub`, too large or malformed; two `Authorization` "
        "headers; proxy headers from an address not in `EVENTFLEET_AUTH_TRUSTED_PROXIES`; a "
        "`?ticket=` that is empty, malformed, too large, unknown, expired or used (`reason` says "
        "which; `WWW-Authenticate` is set)",
        "send `Authorization: Bearer <token>` with a valid token from the configured issuer "
        "(or log in to the console)",
    ),
    ErrorCode(
        "forbidden",
        403,
        "the authenticated principal may not do this: the domain's access rule refuses the "
        "event type or the read, the body names another principal or a role, the message is "
        "someone else's, the console action needs the operator role (a record on the fleet's "
        "own topics the admin role too: `admin_role_required`), or a console form's "
        "CSRF token is missing or wrong, or a ticket is for another route or principal "
        "(`reason` says which); nothing was written",
        "act as a principal the rule allows (roles come from the token), or reload the console "
        "page and submit again",
    ),
    ErrorCode(
        "console_read_only",
        403,
        "an operator action (a dead-letter replay in the console, erasing a subject) on a "
        "process whose operator actions are off",
        "set `EVENTFLEET_CONSOLE_ACTIONS=true` on the process operators use (or `eventfleet "
        "erase`)",
    ),
    ErrorCode(
        "consumer_group_active",
        409,
        "a console reset of a consumer group's offsets while the group has members (`members` "
        "names them): a member would go on from where it stands and commit over the reset; "
        "nothing was changed",
        "stop the group's consumers (or wait until they leave the group) and reset again",
    ),
    ErrorCode(
        "cross_origin",
        403,
        "a state-changing request (`POST`, `PUT`, `PATCH`, `DELETE`) or a WebSocket upgrade "
        "from another site's page, in any auth mode: `Sec-Fetch-Site` other than "
        "`same-origin`, or an `Origin` that is not the fleet's own nor in "
        "`EVENTFLEET_ALLOWED_ORIGINS` (`reason`: `cross_site`, `foreign_origin` or "
        "`opaque_origin`); nothing was read or changed",
        "act from the fleet's own pages, call from a script or server (no browser headers), or "
        "add the page's origin to `EVENTFLEET_ALLOWED_ORIGINS`",
    ),
    ErrorCode(
        "transition_rejected",
        409,
        "the domain's rules refuse this event after the aggregate's `current` one: a declared "
        "transition (`allowed`: the types it may follow, `none` for a new aggregate) or, in "
        "sync mode, the state's own rule (no `allowed`; the message says why)",
        "send an event that may follow `current`, or re-read the state",
    ),
    ErrorCode(
        "transition_rejected_at_store",
        409,
        "the event was accepted (202) but the store, judging it against the last stored event, "
        "refused it (a stale or racing view); a retry of the command is told so",
        "re-read the aggregate and send the event that fits now",
    ),
    ErrorCode(
        "wrong_expected_version",
        409,
        "the request's `expected_version` is not the aggregate's version (`current_version`): "
        "another writer appended first, `0` was sent for an aggregate that exists, or the "
        "expectation is ahead of it; nothing was written. In async mode also after a 202, when "
        "the store, judging the event, found its head at another version (told to a retry of "
        "the command and by `GET …/outcome`)",
        "read the aggregate again (its state and version), decide again, and send the new "
        "decision with the version read and a new `command_id`",
    ),
    ErrorCode(
        "forbidden_at_store",
        403,
        "the event reached the store but its actor (`metadata.actor`) may not send it after "
        "the state at its predecessor: a chat edit or delete of another's message, a "
        "`sender_id` or `role` its token does not hold, or no actor at all (produced to a "
        "topic outside the HTTP door); nothing was stored, and a retry of the command is told so",
        "send it through the HTTP API as a principal the domain's rule allows",
    ),
    ErrorCode(
        "already_replayed",
        409,
        "the dead letter was replayed before with other fields (another aggregate, type or "
        "data); a dead letter is replayed once, so nothing was applied",
        "read `first_replay` (who, when, what, its answer); send a new command for anything else",
    ),
    ErrorCode(
        "conflict",
        409,
        "other writers kept winning the next version (sync mode); nothing was written",
        "retry",
    ),
    ErrorCode(
        "instance_not_stuck",
        409,
        "a retry of a process manager's instance that is not stuck (active, done, or its retry "
        "is under way)",
        "look at the instance first (`GET /v1/processes/{process}/instances/{key}` or "
        "`eventfleet pm show`): only a stuck one is retried, and a retry under way needs none",
    ),
    ErrorCode(
        "command_reused",
        409,
        "an append across aggregates came with a command id an earlier request used for other "
        "aggregates: some of the events it names are stored and some are not; nothing was "
        "written",
        "a retry sends exactly the items it sent before; send new work under a new `command_id`",
    ),
    ErrorCode(
        "command_in_progress",
        409,
        "another request with the same `command_id` is still running",
        "retry after a moment with the same `command_id`",
    ),
    ErrorCode(
        "refused",
        409,
        "a read waited for a command's event (`command_id`) that the store refused; it will "
        "never be stored (`reason` says why)",
        "re-read the aggregate and send the event that fits now",
    ),
    ErrorCode(
        "payload_too_large",
        413,
        "the body is over `EVENTFLEET_MAX_BODY_BYTES`; the message gives its size (or says "
        "it is more than a bound it read up to)",
        "send a smaller body, or raise the limit",
    ),
    ErrorCode(
        "request_timeout",
        408,
        "the request body was not whole `EVENTFLEET_BODY_TIMEOUT_S` after the request began (a "
        "sender that stalled or stopped short); nothing was changed",
        "send the whole body without pausing, as many bytes as `Content-Length` says",
    ),
    ErrorCode(
        "unsupported_media_type",
        415,
        "a JSON route (`POST …/events`, `POST /v1/subjects/{subject}/erase`) got a body whose "
        "`Content-Type` is not `application/json` or `application/*+json` (`text/plain`, a "
        "form, none); nothing was read or changed",
        "send `Content-Type: application/json` (curl: `-H 'Content-Type: application/json'` "
        "or `--json`)",
    ),
    ErrorCode(
        "not_acceptable",
        406,
        "a live subscription asked for neither Server-Sent Events (`Accept: text/event-stream`) "
        "nor a WebSocket upgrade",
        "send `Accept: text/event-stream`, or open a WebSocket",
    ),
    ErrorCode(
        "too_many_subscriptions",
        429,
        "the process serves `EVENTFLEET_LIVE_MAX_CONNECTIONS` live subscriptions, or the client "
        "holds `EVENTFLEET_LIVE_MAX_PER_PRINCIPAL` of them (`limit` says which)",
        "close a subscription, or retry later or on another process (`retry_after_s`)",
    ),
    ErrorCode(
        "too_many_waiters",
        429,
        "a read asked to wait for its writes (`min_version`, `command_id`) while the process has "
        "`EVENTFLEET_RYW_MAX_WAITERS` reads waiting, or the principal "
        "`EVENTFLEET_RYW_MAX_WAITERS_PER_PRINCIPAL` (`limit` says which); nothing waited",
        "let a waiting read end, or retry after `Retry-After` (`retry_after_s`) or on another "
        "process",
    ),
    ErrorCode(
        "too_many_writes",
        429,
        "the principal's write budget is spent: more appends than its rate a second "
        "(`EVENTFLEET_WRITE_BUDGET_PER_S`, or its own or its role's in "
        "`EVENTFLEET_WRITE_BUDGET_PRINCIPALS`, `_ROLES`) beyond its burst, counted across every "
        "commands process; nothing was claimed, marked or written",
        "retry after `Retry-After` (`retry_after_s`), with the same `command_id`; spread the "
        "writes, or ask an operator for a larger budget",
    ),
    ErrorCode(
        "too_many_tickets",
        429,
        "the principal holds `EVENTFLEET_TICKETS_PER_PRINCIPAL` tickets (each counts for minutes "
        "past its expiry, used or not), or the fleet `EVENTFLEET_TICKETS_MAX_HELD` (`limit`: "
        "`principal` or `fleet`); no ticket was issued",
        "open a connection with a ticket you hold, or ask again after `Retry-After` "
        "(`retry_after_s`)",
    ),
    ErrorCode(
        "unknown_event_type",
        422,
        "the domain has no such event type",
        "use one of the types the message lists",
    ),
    ErrorCode(
        "invalid_data",
        422,
        "the data does not match the event type's schema, or a number does not fit 64 bits "
        "(also when the store refused an accepted event for it)",
        "correct the field the message names",
    ),
    ErrorCode(
        "async_domain",
        422,
        "an append across aggregates (`POST /v1/appends`) named an item of an async domain: "
        "its events are stored by the appender after Kafka, one aggregate at a time, so no "
        "transaction can hold them with others (`item` names it); nothing was written",
        "send the async domain's event on its own (`POST /v1/{type}/{id}/events`) once the sync "
        "ones are stored, or let a consumer of their stored events send it",
    ),
    ErrorCode(
        "dead_lettered",
        422,
        "the event was accepted (202) but the appender could not take it and dead-lettered it "
        "(`reason`: a type, schema version or mode this appender does not know yet, a record "
        "over its `EVENTFLEET_MAX_EVENT_BYTES`, bytes it cannot read); nothing was stored, and a "
        "retry of the command is told so",
        "an operator replays the dead letter once the appender can take it (`eventfleet dlq`), "
        "or send a corrected command with a new `command_id`",
    ),
    ErrorCode(
        "replay_failed",
        500,
        "the domain's reducer or an upcaster cannot fold this aggregate's history",
        "fix the reducer or upcaster; other aggregates are not affected",
    ),
    ErrorCode(
        "internal",
        500,
        "an unexpected error in the fleet (a bug)",
        "report it with the message; the process log has the traceback",
    ),
    ErrorCode(
        "transactions_unsupported",
        501,
        "an append across aggregates needs a MongoDB transaction and the store is a standalone "
        "mongod, which runs none; nothing was written",
        "run MongoDB as a replica set (one member will do), or append to each aggregate on its own",
    ),
    ErrorCode(
        "store_unavailable",
        503,
        "MongoDB did not answer in time; nothing was written",
        "retry (safe)",
    ),
    ErrorCode(
        "marker_unavailable",
        503,
        "Redis did not answer in time; nothing was written",
        "retry (safe)",
    ),
    ErrorCode(
        "stream_unavailable",
        503,
        "Kafka did not acknowledge in time; nothing was handed to it",
        "retry (safe)",
    ),
    ErrorCode(
        "dependency_unavailable",
        503,
        "a dependency did not answer in time; nothing was written",
        "retry (safe)",
    ),
    ErrorCode(
        "outcome_unknown",
        503,
        "a write was sent and not answered in time; it may still be stored",
        "retry with the same `command_id`, or ask `GET .../outcome` first",
    ),
    ErrorCode(
        "store_catching_up",
        503,
        "the marker refused the event, but the store has not yet decided every event it may "
        "follow (the appender is behind, or the marker lost its state): neither a 202 nor a 409 "
        "would be sure; nothing was written",
        "retry in a moment (`retry_after_s`)",
    ),
    ErrorCode(
        "shutting_down",
        503,
        "this worker is draining",
        "retry on another worker",
    ),
    ErrorCode(
        "not_yet_stored",
        504,
        "a read asked for `min_version` (or a `command_id`'s event) that was not stored, or not "
        "yet in the view, within its `wait_ms`; `stored_version` says what is",
        "ask again, or with a longer `wait_ms` (at most 30000)",
    ),
)
"""Every code an error answer can carry, in the README's order (a unit test compares both)."""
