"""How every Kafka client of the fleet connects: bootstrap servers, TLS, SASL, timeouts.

One frozen value, built once from the settings (``workers.runtime.connections``), handed to
our producer, the topic admin, the Kafka event bus, the lag exporter and Faust, so no client
connects differently from the others.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from functools import cached_property
from typing import TypedDict

from topics.errors import ConfigError
from workers.secrets import Secret

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


class ClientOptions(TypedDict, total=False):
    """The keyword arguments every aiokafka client takes: producer, consumer and admin alike."""

    bootstrap_servers: list[str]
    security_protocol: str
    request_timeout_ms: int
    ssl_context: ssl.SSLContext | None
    sasl_mechanism: str
    sasl_plain_username: str
    sasl_plain_password: str


@dataclass(frozen=True)
class KafkaConfig:
    """Connection settings shared by every Kafka client; ``client_kwargs()`` feeds aiokafka."""

    bootstrap_servers: tuple[str, ...]
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str = ""
    sasl_username: str = ""
    sasl_password: Secret[str] | None = None
    ssl_cafile: str = ""  # empty: the system's trust store
    ssl_certfile: str = ""  # client certificate (mutual TLS), optional
    ssl_keyfile: str = ""
    ssl_check_hostname: bool = True
    idempotence: bool = True
    timeout_ms: int = 5000

    def __post_init__(self) -> None:
        problems = self._problems()
        if problems:
            raise ConfigError(" ".join(problems))

    def _problems(self) -> list[str]:
        problems: list[str] = []
        if not self.bootstrap_servers:
            problems.append("Kafka needs at least one bootstrap server.")
        if self.security_protocol not in PROTOCOLS:
            problems.append(
                f"EVENTFLEET_KAFKA_SECURITY_PROTOCOL={self.security_protocol!r} is not one of "
                f"{', '.join(PROTOCOLS)}."
            )
        if self.sasl:
            if self.sasl_mechanism not in SASL_MECHANISMS:
                problems.append(
                    f"EVENTFLEET_KAFKA_SASL_MECHANISM={self.sasl_mechanism!r} is not one of "
                    f"{', '.join(SASL_MECHANISMS)} (needed with {self.security_protocol})."
                )
            if not self.sasl_username or not self.sasl_password:
                problems.append(
                    f"{self.security_protocol} needs EVENTFLEET_KAFKA_SASL_USERNAME and a password "
                    "(EVENTFLEET_KAFKA_SASL_PASSWORD_FILE or EVENTFLEET_KAFKA_SASL_PASSWORD_ENV)."
                )
        if bool(self.ssl_certfile) != bool(self.ssl_keyfile):
            problems.append(
                "EVENTFLEET_KAFKA_SSL_CERTFILE and EVENTFLEET_KAFKA_SSL_KEYFILE go together: "
                "set both for a client certificate, or neither."
            )
        if not self.tls and (self.ssl_cafile or self.ssl_certfile):
            problems.append(
                f"TLS files are set but EVENTFLEET_KAFKA_SECURITY_PROTOCOL is "
                f"{self.security_protocol}; use SSL or SASL_SSL."
            )
        return problems

    @property
    def tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    @property
    def sasl(self) -> bool:
        return self.security_protocol.startswith("SASL_")

    @cached_property
    def ssl_context(self) -> ssl.SSLContext | None:
        """One TLS context for every client (None without TLS); a bad file fails here, named."""
        if not self.tls:
            return None
        try:
            context = ssl.create_default_context(cafile=self.ssl_cafile or None)
            if self.ssl_certfile:
                context.load_cert_chain(self.ssl_certfile, self.ssl_keyfile)
        except (OSError, ssl.SSLError) as e:
            raise ConfigError(
                f"the Kafka TLS files cannot be loaded ({e}); check "
                "EVENTFLEET_KAFKA_SSL_CAFILE, EVENTFLEET_KAFKA_SSL_CERTFILE and "
                "EVENTFLEET_KAFKA_SSL_KEYFILE."
            ) from None
        context.check_hostname = self.ssl_check_hostname
        return context

    def client_kwargs(self) -> ClientOptions:
        """Keyword arguments every aiokafka client takes: producer, consumer and admin alike."""
        kwargs: ClientOptions = {
            "bootstrap_servers": list(self.bootstrap_servers),
            "security_protocol": self.security_protocol,
            "request_timeout_ms": self.timeout_ms,
        }
        if self.tls:
            kwargs["ssl_context"] = self.ssl_context
        if self.sasl:
            assert self.sasl_password is not None  # checked in __post_init__
            kwargs["sasl_mechanism"] = self.sasl_mechanism
            kwargs["sasl_plain_username"] = self.sasl_username
            kwargs["sasl_plain_password"] = self.sasl_password.reveal()
        return kwargs

    def describe(self) -> str:
        """A one-line description for logs and messages: servers and security, no secret."""
        parts = [",".join(self.bootstrap_servers), self.security_protocol]
        if self.sasl:
            parts.append(f"{self.sasl_mechanism} as {self.sasl_username}")
        if self.tls:
            parts.append(f"CA {self.ssl_cafile or 'system'}")
            if self.ssl_certfile:
                parts.append("client certificate")
        return " ".join(parts)

    def __repr__(self) -> str:
        return f"KafkaConfig({self.describe()})"


def plain(bootstrap: str, *, timeout_ms: int = 5000) -> KafkaConfig:
    """An open (PLAINTEXT, not idempotent) config from ``h:p,h2:p`` or ``kafka://h:p``.

    Not idempotent, which every broker accepts (Tansu rejects InitProducerId).
    """
    servers = tuple(s for s in bootstrap.removeprefix("kafka://").split(",") if s)
    return KafkaConfig(bootstrap_servers=servers, idempotence=False, timeout_ms=timeout_ms)
