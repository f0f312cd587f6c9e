"""One settings object read from ``EVENTFLEET_*`` environment variables, validated at start."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import TypeVar
from urllib.parse import urlsplit

from topics.errors import ConfigError
from workers.ports.budgets import budget_table
from workers.secrets import CONNECTION_SECRETS, SecretSetting, mask_url, read_secret, secret_text

ENV_PREFIX = "EVENTFLEET_"


def _url(*schemes: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        parts = urlsplit(raw)
        if parts.scheme not in schemes:
            raise ValueError(
                f"expected a URL starting with {' or '.join(s + '://' for s in schemes)}"
            )
        if parts.scheme == "unix":  # a socket path, not a network host
            if not parts.path:
                raise ValueError("the URL names no socket path")
            return raw
        hosts = [host for host in parts.netloc.rsplit("@", 1)[-1].split(",") if host]
        if not hosts:
            raise ValueError("the URL names no host")
        for host in hosts:
            name, port = host.rsplit(":", 1) if ":" in host else (host, "1")
            if not name:
                raise ValueError(f"{host!r} names no host")
            if not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"{host!r} has no valid port")
        return raw

    return parse


def _int(low: int, high: int = 2**31 - 1) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise ValueError("expected a whole number") from None
        if not low <= value <= high:
            raise ValueError(f"expected a number from {low} to {high}")
        return value

    return parse


def _bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


def _text(pattern_doc: str, ok: Callable[[str], bool]) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if not ok(raw):
            raise ValueError(f"expected {pattern_doc}")
        return raw

    return parse


Value = TypeVar("Value")


def _setting(default: Value, parse: Callable[[str], Value], doc: str) -> Value:
    """A field whose value ``parse`` reads from its variable (``Settings.from_env``)."""
    found: Value = field(default=default, metadata={"parse": parse, "doc": doc})
    return found


def _choice(*choices: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if raw.upper() not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}")
        return raw.upper()

    return parse


def _path(raw: str) -> str:
    # Checked for existence where it is used (workers.runtime.connections), so the message
    # can say which file of which setting is missing; here only that it names a file.
    if raw.endswith("/"):
        raise ValueError("expected a file path, not a directory")
    return raw


def _budgets(raw: str) -> str:
    budget_table(raw)  # raises ValueError naming the entry and the form
    return raw


_env_name_ok = _text(
    "an environment variable name (letters, digits, '_')",
    lambda s: s.replace("_", "a").isalnum() and not s[0].isdigit(),
)


_name_ok = _text(
    "letters, digits, '.', '_' or '-'", lambda s: all(c.isalnum() or c in "._-" for c in s)
)


def _is_origin(raw: str) -> bool:
    try:
        parts = urlsplit(raw)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return False
    return (
        parts.scheme in ("http", "https") and bool(parts.hostname) and parts.path in ("", "/")
        and not (parts.query or parts.fragment or parts.username)
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Settings:
    """Every knob of the fleet; ``EVENTFLEET_<FIELD>`` sets ``<field>``."""

    kafka_url: str = _setting(
        "kafka://127.0.0.1:9092",
        _url("kafka"),
        "Kafka bootstrap servers, comma-separated after kafka://",
    )
    mongo_url: str = _setting(
        "mongodb://127.0.0.1:27017", _url("mongodb", "mongodb+srv"), "MongoDB connection string"
    )
    mongo_url_file: str = _setting(
        "", _path, "file holding the MongoDB connection string (instead of EVENTFLEET_MONGO_URL)"
    )
    mongo_url_env: str = _setting(
        "", _env_name_ok, "name of the environment variable holding the MongoDB connection string"
    )
    mongo_database: str = _setting(
        "eventfleet", _name_ok, "MongoDB database holding events, snapshots and views"
    )
    redis_url: str = _setting(
        "redis://127.0.0.1:6379/0",
        _url(
            "redis",
            "rediss",
            "unix",
            "redis+sentinel",
            "rediss+sentinel",
            "redis+cluster",
            "rediss+cluster",
        ),
        "Redis for the marker, the command answers, the live feed and the bridge's Redis bus; redis+sentinel://h1:26379,h2:26379/<master>/<db> "
        "for Sentinel, redis+cluster://h1:6379,h2:6379 for Cluster",
    )
    redis_url_file: str = _setting(
        "", _path, "file holding the Redis URL (instead of EVENTFLEET_REDIS_URL)"
    )
    redis_url_env: str = _setting(
        "", _env_name_ok, "name of the environment variable holding the Redis URL"
    )
    nats_url: str = _setting(
        "nats://127.0.0.1:4222", _url("nats", "tls"), "NATS, for the bridge role's NATS bus"
    )
    nats_url_file: str = _setting(
        "", _path, "file holding the NATS URL (instead of EVENTFLEET_NATS_URL)"
    )
    nats_url_env: str = _setting(
        "", _env_name_ok, "name of the environment variable holding the NATS URL"
    )
    bridge_bus: str = _setting(
        "redis",
        _text("redis or nats", lambda s: s in ("redis", "nats")),
        "the bus the bridge role republishes events.stored to (EVENTFLEET_REDIS_URL or _NATS_URL)",
    )
    topic_prefix: str = _setting("eventfleet.", _name_ok, "prefix of every topic name")
    group_id: str = _setting(
        "eventfleet", _name_ok, "consumer group prefix; each role joins <group_id>-<role>"
    )
    partitions: int = _setting(
        8, _int(1, 10_000), "partitions of every topic created by `topics ensure`"
    )
    replication: int = _setting(1, _int(1, 16), "replication factor of created topics")
    min_insync_replicas: int = _setting(
        0,
        _int(0, 16),
        "min.insync.replicas of created topics (0: replication - 1, at least 1, at most 2)",
    )
    topic_retention_ms: int = _setting(
        7 * 24 * 3600 * 1000,
        _int(-1, 2**62),
        "retention.ms of created topics (events.stored keeps everything; -1: forever)",
    )
    topics_auto_create: bool = _setting(
        False,
        _bool,
        "workers create missing topics at start (needs CreateTopics); otherwise `topics ensure`",
    )
    http_host: str = _setting(
        "127.0.0.1", _text("a host name or address", bool), "address the HTTP API binds"
    )
    http_port: int = _setting(8080, _int(0, 65535), "port of the HTTP API (0: any free port)")
    auth: str = _setting(
        "",
        _text("jwt, proxy or none", lambda s: s in ("jwt", "proxy", "none")),
        "who may call the HTTP API and the console: jwt (bearer tokens), proxy (an "
        "authenticating proxy's headers) or none (open: development only); a worker needs one",
    )
    auth_jwks: str = _setting(
        "",
        _text("a file path or an https URL", bool),
        "jwt: the signing keys, a JWKS file or https URL (cached; refetched on an unknown kid)",
    )
    auth_issuer: str = _setting("", _text("an issuer", bool), "jwt: the required iss claim")
    auth_audience: str = _setting(
        "", _text("an audience", bool), "jwt: the required aud claim (this API's client id)"
    )
    auth_hs256_secret_file: str = _setting(
        "",
        _path,
        "jwt: file holding an HS256 shared secret, at least 32 bytes (instead of, or beside, "
        "the JWKS)",
    )
    auth_hs256_secret_env: str = _setting(
        "", _env_name_ok, "jwt: name of the environment variable holding the HS256 shared secret"
    )
    auth_roles_claim: str = _setting(
        "roles",
        _text("a claim name or dotted path", lambda s: all(p for p in s.split("."))),
        "jwt: the claim holding the roles; a dotted path reads nested claims (realm_access.roles)",
    )
    auth_trusted_proxies: str = _setting(
        "",
        _text("comma-separated CIDRs", bool),
        "proxy: CIDRs whose X-Forwarded-User/-Groups are trusted (e.g. 10.0.0.0/8,127.0.0.1/32); "
        "any mode: whose X-Forwarded-Host/-Proto name the fleet's own origin",
    )
    allowed_origins: str = _setting(
        "",
        _text(
            "comma-separated origins like https://app.example (scheme://host[:port])",
            lambda s: all(_is_origin(p.strip()) for p in s.split(",") if p.strip()),
        ),
        "origins besides the fleet's own whose pages may POST and open WebSockets here "
        "(README Security: cross-site requests)",
    )
    auth_leeway_s: int = _setting(30, _int(0, 300), "jwt: clock skew allowed on exp, nbf and iat")
    auth_jwks_refresh_s: int = _setting(
        30,
        _int(1, 86_400),
        "jwt: a token with an unknown kid refetches the JWKS at most this often",
    )
    auth_jwks_max_age_s: int = _setting(
        300, _int(1, 86_400), "jwt: the cached JWKS is refetched when older (removed keys stop)"
    )
    auth_viewer_role: str = _setting(
        "eventfleet-viewer", _name_ok, "role that may read the console (the operator role may too)"
    )
    auth_operator_role: str = _setting(
        "eventfleet-operator", _name_ok, "role that may replay dead letters in the console"
    )
    kafka_security_protocol: str = _setting(
        "PLAINTEXT",
        _choice("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"),
        "how every Kafka client connects: PLAINTEXT, SSL (TLS), SASL_PLAINTEXT or SASL_SSL",
    )
    kafka_sasl_mechanism: str = _setting(
        "SCRAM-SHA-512",
        _choice("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"),
        "SASL mechanism with SASL_*: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512",
    )
    kafka_sasl_username: str = _setting("", _text("a user name", bool), "SASL user name")
    kafka_sasl_password_file: str = _setting(
        "", _path, "file holding the SASL password (e.g. a mounted Secret)"
    )
    kafka_sasl_password_env: str = _setting(
        "", _env_name_ok, "name of the environment variable holding the SASL password"
    )
    kafka_ssl_cafile: str = _setting(
        "", _path, "CA bundle (PEM) that signs the brokers' certificates; empty: system CAs"
    )
    kafka_ssl_certfile: str = _setting(
        "", _path, "client certificate (PEM) for mutual TLS, with EVENTFLEET_KAFKA_SSL_KEYFILE"
    )
    kafka_ssl_keyfile: str = _setting("", _path, "private key (PEM) of the client certificate")
    kafka_ssl_check_hostname: bool = _setting(
        True, _bool, "check that a broker's certificate names the host connected to"
    )
    kafka_idempotence: bool = _setting(
        True, _bool, "idempotent producer (off for brokers without InitProducerId, e.g. Tansu)"
    )
    kafka_timeout_ms: int = _setting(
        5000,
        _int(100),
        "Kafka's time to answer one request (request_timeout_ms); a produce waits at most 2.5x",
    )
    kafka_fetch_max_wait_ms: int = _setting(
        100, _int(1, 60_000), "how long a fetch waits for data (latency floor on Tansu)"
    )
    kafka_session_timeout_ms: int = _setting(
        10_000, _int(1000, 300_000), "consumer group session timeout"
    )
    mongo_timeout_ms: int = _setting(
        5000,
        _int(100),
        "bound on one whole store call (PyMongo timeoutMS: selection, connection, operation)",
    )
    redis_timeout_ms: int = _setting(2000, _int(50), "bound on one Redis call")
    marker_ttl_s: int = _setting(
        86_400, _int(1), "lifetime of an aggregate's mark; the store is the truth after it"
    )
    command_ttl_s: int = _setting(
        86_400,
        _int(1),
        "how long a command_id's first answer (or its last refusal at the door) is remembered",
    )
    max_body_bytes: int = _setting(
        64 * 1024, _int(256), "largest accepted HTTP request body (413 above)"
    )
    body_timeout_s: int = _setting(
        30, _int(1, 600), "a request body not whole this long after it began is refused (408)"
    )
    max_event_bytes: int = _setting(
        1024 * 1024, _int(1024), "largest event accepted off a topic (dead-lettered above)"
    )
    refusal_wait_ms: int = _setting(
        3000,
        _int(0, 600_000),
        "a refusal the store must confirm waits at most this long for the appender to catch up "
        "(then 503 store_catching_up)",
    )
    append_wait_ms: int = _setting(
        2000,
        _int(0, 600_000),
        "longest an event waits at the appender for the event it was validated after",
    )
    sync_publish_budget_ms: int = _setting(
        1000,
        _int(1, 600_000),
        "sync mode: longest a request waits for Kafka after storing (then 201 published=false)",
    )
    audit_interval_s: int = _setting(
        30,
        _int(0, 86_400),
        "snapshotter processes audit a sample of recently stored aggregates this often (0: off)",
    )
    batch_size: int = _setting(500, _int(1, 100_000), "most events one appender batch takes")
    batch_within_ms: int = _setting(10, _int(1, 60_000), "longest an appender batch waits to fill")
    snapshot_concurrency: int = _setting(
        4, _int(1, 1024), "snapshot rebuilds running at once per process"
    )
    snapshot_tail: int = _setting(
        100,
        _int(1),
        "a query or validation replaying more events than this saves its snapshot at once",
    )
    snapshot_query_interval_ms: int = _setting(
        1000,
        _int(0, 86_400_000),
        "a query or validation saves the state it replayed at most this often per aggregate",
    )
    health_interval_s: int = _setting(
        5, _int(1, 300), "how often dependencies are checked for /healthz?verbose and metrics"
    )
    lag_interval_s: int = _setting(
        15, _int(1, 3600), "how often the lag role reads group offsets and high-water marks"
    )
    drain_timeout_s: int = _setting(
        20, _int(1, 3600), "on SIGTERM: longest wait for the in-flight batch"
    )
    forward_lookback_s: int = _setting(
        60,
        _int(0, 86_400),
        "a forwarder reads its downstream topics back from this long before the first "
        "uncommitted events.stored record of a partition it is assigned (hosts' clocks apart, "
        "an appender's late republish)",
    )
    gc_threshold: int = _setting(
        50_000,
        _int(0, 10_000_000),
        "allocations between two of Python's youngest cyclic collections in a worker, whose "
        "startup objects are frozen out of them (0: Python's defaults, nothing frozen)",
    )
    console_actions: bool = _setting(
        False,
        _bool,
        "the console (/console) may re-submit dead letters; off: read-only, its POSTs get 403",
    )
    snapshot_ladder_step: int = _setting(
        1000,
        _int(0, 10**9),
        "keep a dated snapshot (a rung) every this many versions, so a state at a past version "
        "or time replays at most about this many events; 0: no ladder",
    )
    personal_data_encryption: bool = _setting(
        True,
        _bool,
        "seal the personal fields domains declare (AES-GCM, one key per subject) before "
        "anything is produced; off: new events carry them in plain text (sealed ones still open)",
    )
    master_key_file: str = _setting(
        "", _path, "file holding the master key (32 bytes, base64) that wraps the data keys"
    )
    master_key_env: str = _setting(
        "", _env_name_ok, "name of the environment variable holding the master key (base64)"
    )
    key_cache_ttl_s: int = _setting(
        60,
        _int(1, 3600),
        "how long a process keeps a data key to open values: an erasure is unreadable "
        "everywhere after this (sealing asks the key store every time)",
    )
    console_sample_interval_s: int = _setting(
        5, _int(1, 300), "how often the console samples lag and throughput (the last 120 kept)"
    )
    live_buffer_events: int = _setting(
        1000,
        _int(1, 1_000_000),
        "live events one subscriber may hold unsent; past it the slow client is closed with its "
        "position",
    )
    live_heartbeat_s: int = _setting(
        15,
        _int(1, 3600),
        "a quiet live subscription gets a heartbeat and a store check this often (at most twice "
        "this after the last event it was handed); a write waiting twice this long ends the "
        "connection",
    )
    ticket_ttl_s: int = _setting(
        30,
        _int(1, 600),
        "a ticket (POST /v1/tickets) opens one live connection within this many seconds",
    )
    tickets_per_principal: int = _setting(
        100,
        _int(1, 1_000_000),
        "tickets one principal may hold in Redis at once (each counts until 5 minutes past its "
        "expiry, used or not); 429 too_many_tickets above",
    )
    tickets_max_held: int = _setting(
        20_000,
        _int(1, 100_000_000),
        "tickets the fleet holds in Redis at most, every principal's together (about 1 KB "
        "each); 429 too_many_tickets above",
    )
    write_budget_per_s: int = _setting(
        200,
        _int(0, 10_000_000),
        "appends a second each principal may make on average, counted across every commands "
        "process (0: no budget); 429 too_many_writes above",
    )
    write_budget_burst: int = _setting(
        400,
        _int(1, 100_000_000),
        "appends a principal may make at once before its rate holds it back (the bucket's size)",
    )
    write_budget_principals: str = _setting(
        "",
        _budgets,
        "budgets of named principals instead of the default, name=rate[/burst] comma-separated "
        "(burst: twice the rate unless given; 0: no budget), e.g. importer=2000/4000,probe=0",
    )
    write_budget_roles: str = _setting(
        "",
        _budgets,
        "budgets by role, role=rate[/burst] comma-separated: a principal holding several gets "
        "the largest, its own entry in EVENTFLEET_WRITE_BUDGET_PRINCIPALS wins over them",
    )
    live_max_connections: int = _setting(
        10_000, _int(0, 10_000_000), "live subscriptions one process serves at once (429 above)"
    )
    live_max_per_principal: int = _setting(
        100, _int(1, 1_000_000), "live subscriptions one client holds on one process (429 above)"
    )
    ryw_max_waiters: int = _setting(
        2000,
        _int(0, 1_000_000),
        "reads waiting for their writes (min_version, command_id) in one process at once (429 "
        "above)",
    )
    ryw_max_waiters_per_principal: int = _setting(
        100,
        _int(1, 1_000_000),
        "reads one principal has waiting for their writes on one process (429 above)",
    )
    ryw_poll_ms: int = _setting(
        1000,
        _int(10, 600_000),
        "how often the store is checked for an aggregate reads wait on (one check for all its "
        "waiters; the live feed wakes them at once, this catches a lost announcement)",
    )
    domains: str = _setting(
        "",
        _text("module:callable", lambda s: ":" in s),
        "callable returning the enabled Domains (required: a worker and every command that "
        "reads the store refuse to start without it; `eventfleet dev` runs the examples, "
        "workers.examples.domains:default_domains, when it is unset)",
    )
    event_loop: str = _setting(
        "uvloop",
        _text("uvloop or asyncio", lambda s: s in ("uvloop", "asyncio")),
        "the event loop of the serving commands (worker, dev): uvloop (libuv underneath; about "
        "9% less CPU per command, measured side by side) or Python's own asyncio",
    )
    log_level: str = _setting(
        "info",
        _text(
            "debug, info, warning or error",
            lambda s: s.lower() in ("debug", "info", "warning", "error"),
        ),
        "log level",
    )
    tracing: bool = _setting(
        False,
        _bool,
        "trace even with no OTLP endpoint named (spans go to OTEL_EXPORTER_OTLP_ENDPOINT's "
        "default, http://localhost:4318); tracing is on whenever an OTLP endpoint is named",
    )
    trace_url_template: str = _setting(
        "",
        _text(
            "an http(s) URL holding {trace_id}",
            lambda s: s.startswith(("http://", "https://")) and "{trace_id}" in s,
        ),
        "the trace UI's page of one trace, e.g. http://jaeger:16686/trace/{trace_id}: the "
        "console's timeline links each event's trace id there",
    )
    log_format: str = _setting(
        "text",
        _text("text or json", lambda s: s in ("text", "json")),
        "text, or json: one JSON object a line, with trace_id and span_id on every line written "
        "inside a span",
    )
    explicit: frozenset[str] = field(
        default=frozenset(), compare=False, metadata={"internal": True}
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read every field from ``EVENTFLEET_<FIELD>``; a bad value names its variable."""
        environ = os.environ if environ is None else environ
        values: dict[str, object] = {}  # each parsed by its own field's parser: typed per field
        specs = {spec.name: spec for spec in fields(cls) if not spec.metadata.get("internal")}
        for spec in specs.values():
            name = env_name(spec.name)
            raw = environ.get(name)
            if raw is None or raw == "":
                continue
            try:
                values[spec.name] = spec.metadata["parse"](raw.strip())
            except ValueError as e:
                # A URL may carry a password: the message shows it masked, never whole.
                raise ConfigError(
                    f"{name}={mask_url(raw)!r} is invalid: {e}. Default: {spec.default!r}."
                ) from None
        for secret in CONNECTION_SECRETS:
            found = _connection(secret, values, environ)
            if found is not None:
                url, source = found
                try:
                    values[secret.name] = specs[secret.name].metadata["parse"](url)
                except ValueError as e:
                    raise ConfigError(
                        f"{source}: the {secret.what} there is invalid: {e}."
                    ) from None
        # Field names known at run time, each value of its field's type by its parser: a call
        # mypy cannot check field by field (the dataclass refuses an unknown name).
        build: Callable[..., Settings] = cls
        return build(**values, explicit=frozenset(values))

    def with_defaults(self, **values: object) -> Settings:
        """These settings with ``values`` for every field the environment did not set."""
        change: Callable[..., Settings] = replace  # as in from_env: names known at run time
        return change(self, **{k: v for k, v in values.items() if k not in self.explicit})

    @property
    def claim_ttl_ms(self) -> int:
        """How long a command claim lives: longer than any request.

        A request holds it while it talks to Redis (twice) and Kafka (1.5 x its timeout at
        most); after that it cannot name anything still in flight from it.
        """
        return 2 * self.kafka_timeout_ms + 2 * self.redis_timeout_ms + 1000

    @property
    def kafka_bootstrap(self) -> list[str]:
        return urlsplit(self.kafka_url).netloc.split(",")

    def __repr__(self) -> str:
        # Settings end up in logs and tracebacks: URLs show with their passwords masked.
        shown = ", ".join(
            f"{spec.name}={mask_url(repr(getattr(self, spec.name)))}"
            for spec in fields(self)
            if not spec.metadata.get("internal")
        )
        return f"Settings({shown})"

    def masked(self, name: str) -> str:
        """A setting's value as logs and messages may show it: URL passwords masked."""
        return mask_url(str(getattr(self, name)))


def _connection(
    secret: SecretSetting, values: Mapping[str, object], environ: Mapping[str, str]
) -> tuple[str, str] | None:
    """The connection string ``EVENTFLEET_<NAME>_FILE`` or ``_ENV`` holds and where it was read,
    by the one reader (which refuses it beside the plain ``EVENTFLEET_<NAME>``); None when
    neither is set."""
    file, env = _given(values, f"{secret.name}_file"), _given(values, f"{secret.name}_env")
    if not (file or env):
        return None
    plain = environ.get(secret.plain_variable, "").strip()
    value = read_secret(secret, file=file, env=env, plain=plain, environ=environ)
    assert value is not None  # a file or a variable was named
    source = secret.source(file=file, env=env)
    return secret_text(secret, value, source).strip(), source


def _given(values: Mapping[str, object], name: str) -> str:
    """A text setting as parsed so far (its parser returns text); '' when it is not set."""
    found = values.get(name, "")
    if not isinstance(found, str):
        raise TypeError(f"{name} is not a text setting")
    return found


def env_name(field_name: str) -> str:
    return ENV_PREFIX + field_name.upper()


OPENTELEMETRY: tuple[tuple[str, str, str], ...] = (
    (
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "",
        "OpenTelemetry (read by its SDK): the OTLP/HTTP collector spans go to "
        "(http://collector:4318); naming it turns tracing on",
    ),
    (
        "OTEL_TRACES_SAMPLER",
        "parentbased_always_on",
        "OpenTelemetry: which traces are kept; parentbased_traceidratio with "
        "OTEL_TRACES_SAMPLER_ARG keeps that share of new traces (a caller's choice is followed)",
    ),
    ("OTEL_TRACES_SAMPLER_ARG", "", "OpenTelemetry: the sampler's argument, e.g. 0.01"),
    (
        "OTEL_SERVICE_NAME",
        "eventfleet-<role>",
        "OpenTelemetry: the service name spans carry",
    ),
    (
        "OTEL_RESOURCE_ATTRIBUTES",
        "",
        "OpenTelemetry: attributes of every span, k=v comma-separated (k8s.pod.name=...)",
    ),
)
"""The standard variables OpenTelemetry's SDK reads itself (``workers.tracing``); not
settings of ours, documented with them."""


def documented() -> list[tuple[str, object, str]]:
    """(variable, default, description) for every setting: the README table and `--help`."""
    return [
        (env_name(spec.name), spec.default, spec.metadata["doc"])
        for spec in fields(Settings)
        if not spec.metadata.get("internal")
    ]
