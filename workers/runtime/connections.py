"""Connection values built once from the settings and the secrets read at start: the Kafka
config every client shares, the catalog, the master key a fleet with personal data needs."""

from __future__ import annotations

from pathlib import Path

from snapshot_rules.domain import Domains
from topics.catalog import TopicNames, TopicSpec, catalog
from topics.errors import ConfigError
from workers.adapters.kafka.config import KafkaConfig
from workers.runtime.settings import Settings
from workers.secrets import Secrets

_TLS_FILES = ("kafka_ssl_cafile", "kafka_ssl_certfile", "kafka_ssl_keyfile")


def kafka_config(settings: Settings, secrets: Secrets) -> KafkaConfig:
    """The one Kafka config of a process, with the password read at start; a missing TLS file
    fails here, named."""
    for name in _TLS_FILES:
        path = getattr(settings, name)
        if path and not Path(path).is_file():
            raise ConfigError(
                f"EVENTFLEET_{name.upper()}={path!r} is not a readable file; mount it there "
                "or fix the path."
            )
    sasl = settings.kafka_security_protocol.startswith("SASL_")
    config = KafkaConfig(
        bootstrap_servers=tuple(settings.kafka_bootstrap),
        security_protocol=settings.kafka_security_protocol,
        sasl_mechanism=settings.kafka_sasl_mechanism if sasl else "",
        sasl_username=settings.kafka_sasl_username if sasl else "",
        sasl_password=secrets.kafka_sasl_password if sasl else None,
        ssl_cafile=settings.kafka_ssl_cafile,
        ssl_certfile=settings.kafka_ssl_certfile,
        ssl_keyfile=settings.kafka_ssl_keyfile,
        ssl_check_hostname=settings.kafka_ssl_check_hostname,
        idempotence=settings.kafka_idempotence,
        timeout_ms=settings.kafka_timeout_ms,
    )
    _ = config.ssl_context  # load the TLS files now: a bad one stops the process at start
    return config


def fleet_catalog(settings: Settings, domains: Domains) -> list[TopicSpec]:
    """The catalog with this deployment's partitions, replication, retention and ISR minimum."""
    try:
        return catalog(
            TopicNames(settings.topic_prefix),
            partitions=settings.partitions,
            replication=settings.replication,
            downstream=domains.downstream_topics(),
            retention_ms=settings.topic_retention_ms,
            min_insync_replicas=settings.min_insync_replicas or None,
        )
    except ValueError as e:
        raise ConfigError(
            f"EVENTFLEET_MIN_INSYNC_REPLICAS={settings.min_insync_replicas} does not fit "
            f"EVENTFLEET_REPLICATION={settings.replication}: {e}"
        ) from None


def required_master_key(secrets: Secrets, domains: Domains) -> bytes | None:
    """The master key read at start, refused as missing when an enabled domain declares
    personal fields: a fleet that would seal personal data has no fixed key to fall back on."""
    personal = [domain.name for domain in domains if domain.personal is not None]
    if secrets.master_key is None and personal:
        raise ConfigError(
            f"no master key: domain {', '.join(personal)} declares personal fields; set "
            "EVENTFLEET_MASTER_KEY_FILE (a file holding 32 bytes in base64) or "
            "EVENTFLEET_MASTER_KEY_ENV (the name of a variable holding them); make one with "
            "`head -c 32 /dev/urandom | base64`."
        )
    return None if secrets.master_key is None else secrets.master_key.reveal()
