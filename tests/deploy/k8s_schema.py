"""Schema checks: built-in kinds against Kubernetes' OpenAPI schemas, CRDs against theirs.

kubernetes-validate knows only built-in kinds. The custom resources deploy/ uses (KEDA
ScaledObject and TriggerAuthentication, Prometheus Operator PodMonitor and PrometheusRule)
are checked against the schemas of the cloudcoil model packages, which are generated from the
projects' own CRDs (KEDA 2.16, prometheus-operator 0.80). Unknown fields are errors, as
``kubectl apply`` (strict field validation) makes them. KEDA types a trigger's ``metadata`` as
a string map, so the Kafka scaler's documented parameters are checked on top of it.
"""

from __future__ import annotations

import importlib
import re
from functools import cache
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import kubernetes_validate  # type: ignore[import-untyped]
from pydantic import BaseModel

K8S_VERSION = "1.29"  # the oldest Kubernetes the manifests support

_BOOL = {"enum": ["true", "false"]}
_NUMBER = {"type": "string", "pattern": r"^[0-9]+$"}
# The Kafka scaler's parameters, as KEDA documents them (keda.sh/docs/2.16/scalers/apache-kafka).
KAFKA_METADATA = {
    "type": "object",
    "required": ["bootstrapServers", "consumerGroup", "topic"],
    "additionalProperties": False,
    "properties": {
        "bootstrapServers": {"type": "string"},
        "consumerGroup": {"type": "string"},
        "topic": {"type": "string"},
        "partitionLimitation": {"type": "string"},
        "lagThreshold": _NUMBER,
        "activationLagThreshold": _NUMBER,
        "offsetResetPolicy": {"enum": ["earliest", "latest"]},
        "allowIdleConsumers": _BOOL,
        "excludePersistentLag": _BOOL,
        "scaleToZeroOnInvalidOffset": _BOOL,
        "limitToPartitionsWithLag": _BOOL,
        "ensureEvenDistributionOfPartitions": _BOOL,
        "version": {"type": "string"},
        "sasl": {
            "enum": ["none", "plaintext", "scram_sha256", "scram_sha512", "oauthbearer", "gssapi"]
        },
        "tls": {"enum": ["enable", "disable"]},
        "unsafeSsl": _BOOL,
    },
}
CRD_KINDS = {
    ("keda.sh/v1alpha1", "ScaledObject"),
    ("keda.sh/v1alpha1", "TriggerAuthentication"),
    ("monitoring.coreos.com/v1", "PodMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
}
MODEL_PACKAGES = {
    "keda.sh/v1alpha1": "cloudcoil.models.keda.v1alpha1",
    "monitoring.coreos.com/v1": "cloudcoil.models.prometheus_operator.v1",
}
"""Where the cloudcoil model of each API version's kinds is (a model is named as its kind)."""


def crd_model(key: tuple[str, str]) -> type[BaseModel]:
    """The model of a custom resource kind, imported when a check needs it: the model packages
    take 1.6 s to import, and every pytest worker collects the files that import this module."""
    api_version, kind = key
    model: type[BaseModel] = getattr(importlib.import_module(MODEL_PACKAGES[api_version]), kind)
    return model


def _closed(node: Any) -> Any:
    """The schema with every object that lists its properties closed to others.

    The models write an optional field as ``anyOf [X, null]``; a manifest never sets null,
    so X alone is checked, which also makes errors name the real cause.
    """
    if isinstance(node, dict):
        node = {k: _closed(v) for k, v in node.items()}
        options = node.get("anyOf")
        if isinstance(options, list) and {"type": "null"} in options and len(options) == 2:
            rest = {k: v for k, v in node.items() if k not in ("anyOf", "default")}
            node = {**next(o for o in options if o != {"type": "null"}), **rest}
        if "properties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False
        return node
    if isinstance(node, list):
        return [_closed(v) for v in node]
    return node


@cache
def crd_schema(key: tuple[str, str]) -> dict[str, Any]:
    schema: dict[str, Any] = _closed(crd_model(key).model_json_schema(by_alias=True))
    return schema


_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


def _name(obj: dict[str, Any]) -> str:
    return f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"


def _deepest(error: Any) -> Any:
    """The most specific cause of an ``anyOf``/``oneOf`` failure."""
    while error.context:
        error = jsonschema.exceptions.best_match(error.context)
    return error


def crd_problems(obj: dict[str, Any]) -> list[str]:
    """Structural problems of one custom resource (empty: valid)."""
    key = (obj.get("apiVersion", ""), obj.get("kind", ""))
    if key not in CRD_KINDS:
        return [f"{_name(obj)}: {key} is neither a built-in kind nor a known CRD"]
    meta = obj.get("metadata", {})
    problems = []
    if not _DNS_SUBDOMAIN.match(str(meta.get("name", ""))):
        problems.append(f"{_name(obj)}: metadata.name is not a DNS subdomain")
    validator = jsonschema.Draft202012Validator(crd_schema(key))
    for error in validator.iter_errors(obj):
        error = _deepest(error)
        path = ".".join(str(p) for p in error.absolute_path)
        problems.append(f"{_name(obj)}: {path}: {error.message}")
    if obj.get("kind") == "ScaledObject":
        kafka = jsonschema.Draft202012Validator(KAFKA_METADATA)
        for i, trigger in enumerate(obj.get("spec", {}).get("triggers", [])):
            if trigger.get("type") == "kafka":
                for error in kafka.iter_errors(trigger.get("metadata", {})):
                    path = ".".join(str(p) for p in error.absolute_path)
                    problems.append(
                        f"{_name(obj)}: spec.triggers.{i}.metadata.{path}: {error.message}"
                    )
    return problems


def schema_problems(objects: list[dict[str, Any]], version: str = K8S_VERSION) -> list[str]:
    """Every object checked: built-ins strictly against Kubernetes ``version``, CRDs here."""
    problems: list[str] = []
    for obj in objects:
        if (obj.get("apiVersion"), obj.get("kind")) in CRD_KINDS:
            problems.extend(crd_problems(obj))
            continue
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            path = ".".join(str(p) for p in e.path)
            problems.append(f"{_name(obj)}: {path}: {e.message}")
        except kubernetes_validate.SchemaNotFoundError as e:
            problems.append(f"{_name(obj)}: {e.message}")
    return problems
