"""Schema checks: built-in kinds against Kubernetes' OpenAPI schemas, CRDs structurally.

kubernetes-validate knows only built-in kinds. For the custom resources deploy/ uses
(KEDA ScaledObject, Prometheus Operator PodMonitor and PrometheusRule) the schemas below
cover the fields we write, with ``additionalProperties: false`` so a misspelt field fails
as it would against the installed CRD.
"""

from __future__ import annotations

import re
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import kubernetes_validate  # type: ignore[import-untyped]

K8S_VERSION = "1.29"  # the oldest Kubernetes the manifests support

_STR = {"type": "string"}
_INT0 = {"type": "integer", "minimum": 0}
_STR_MAP = {"type": "object", "additionalProperties": _STR}
_DURATION = {
    "type": "string",
    "pattern": r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$",
}


def _obj(required: list[str], **properties: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "required": required,
        "properties": properties,
        "additionalProperties": False,
    }


_KAFKA_METADATA = _obj(
    ["bootstrapServers", "consumerGroup", "topic"],
    bootstrapServers=_STR,
    consumerGroup=_STR,
    topic=_STR,
    lagThreshold={"type": "string", "pattern": r"^[0-9]+$"},
    activationLagThreshold={"type": "string", "pattern": r"^[0-9]+$"},
    offsetResetPolicy={"enum": ["earliest", "latest"]},
    allowIdleConsumers={"enum": ["true", "false"]},
    excludePersistentLag={"enum": ["true", "false"]},
    limitToPartitionsWithLag={"enum": ["true", "false"]},
    scaleToZeroOnInvalidOffset={"enum": ["true", "false"]},
    version=_STR,
    sasl=_STR,
    tls=_STR,
)
_SCALED_OBJECT = _obj(
    ["scaleTargetRef", "triggers"],
    scaleTargetRef=_obj(
        ["name"], apiVersion=_STR, kind=_STR, name=_STR, envSourceContainerName=_STR
    ),
    minReplicaCount=_INT0,
    maxReplicaCount={"type": "integer", "minimum": 1},
    idleReplicaCount=_INT0,
    pollingInterval={"type": "integer", "minimum": 1},
    cooldownPeriod=_INT0,
    initialCooldownPeriod=_INT0,
    fallback=_obj(["failureThreshold", "replicas"], failureThreshold=_INT0, replicas=_INT0),
    advanced={"type": "object"},
    triggers={
        "type": "array",
        "minItems": 1,
        "items": {
            **_obj(
                ["type", "metadata"],
                type=_STR,
                name=_STR,
                metricType=_STR,
                useCachedMetrics={"type": "boolean"},
                metadata=_STR_MAP,
                authenticationRef=_obj(["name"], name=_STR, kind=_STR),
            ),
            "if": {"properties": {"type": {"const": "kafka"}}},
            "then": {"properties": {"metadata": _KAFKA_METADATA}},
        },
    },
)
_LABEL_SELECTOR = _obj([], matchLabels=_STR_MAP, matchExpressions={"type": "array"})
_RELABEL = _obj(
    [],
    sourceLabels={"type": "array", "items": _STR},
    separator=_STR,
    targetLabel=_STR,
    regex=_STR,
    modulus={"type": "integer"},
    replacement=_STR,
    action=_STR,
)
_POD_MONITOR = _obj(
    ["selector"],
    selector=_LABEL_SELECTOR,
    namespaceSelector=_obj(
        [], any={"type": "boolean"}, matchNames={"type": "array", "items": _STR}
    ),
    jobLabel=_STR,
    podTargetLabels={"type": "array", "items": _STR},
    podMetricsEndpoints={
        "type": "array",
        "items": _obj(
            ["port"],
            port=_STR,
            path={"type": "string", "pattern": "^/"},
            scheme=_STR,
            interval=_DURATION,
            scrapeTimeout=_DURATION,
            honorLabels={"type": "boolean"},
            relabelings={"type": "array", "items": _RELABEL},
            metricRelabelings={"type": "array", "items": _RELABEL},
        ),
    },
)
_RULE = {
    **_obj(
        ["expr"],
        alert=_STR,
        record=_STR,
        expr=_STR,
        labels=_STR_MAP,
        annotations=_STR_MAP,
        keep_firing_for=_DURATION,
        **{"for": _DURATION},
    ),
    "oneOf": [{"required": ["alert"]}, {"required": ["record"]}],
}
_PROMETHEUS_RULE = _obj(
    ["groups"],
    groups={
        "type": "array",
        "minItems": 1,
        "items": _obj(
            ["name", "rules"],
            name=_STR,
            interval=_DURATION,
            limit=_INT0,
            rules={"type": "array", "minItems": 1, "items": _RULE},
        ),
    },
)

CRD_SPECS: dict[tuple[str, str], dict[str, Any]] = {
    ("keda.sh/v1alpha1", "ScaledObject"): _SCALED_OBJECT,
    ("monitoring.coreos.com/v1", "PodMonitor"): _POD_MONITOR,
    ("monitoring.coreos.com/v1", "PrometheusRule"): _PROMETHEUS_RULE,
}
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


def _name(obj: dict[str, Any]) -> str:
    return f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"


def crd_problems(obj: dict[str, Any]) -> list[str]:
    """Structural problems of one custom resource (empty: valid)."""
    key = (obj.get("apiVersion", ""), obj.get("kind", ""))
    if key not in CRD_SPECS:
        return [f"{_name(obj)}: {key} is neither a built-in kind nor a known CRD"]
    meta = obj.get("metadata", {})
    problems = []
    if not _DNS_SUBDOMAIN.match(str(meta.get("name", ""))):
        problems.append(f"{_name(obj)}: metadata.name is not a DNS subdomain")
    if set(obj) - {"apiVersion", "kind", "metadata", "spec"}:
        problems.append(f"{_name(obj)}: unexpected top-level fields")
    validator = jsonschema.Draft202012Validator(CRD_SPECS[key])
    for error in validator.iter_errors(obj.get("spec")):
        path = ".".join(str(p) for p in error.absolute_path)
        problems.append(f"{_name(obj)}: spec.{path}: {error.message}")
    return problems


def schema_problems(objects: list[dict[str, Any]], version: str = K8S_VERSION) -> list[str]:
    """Every object checked: built-ins strictly against Kubernetes ``version``, CRDs here."""
    problems: list[str] = []
    for obj in objects:
        if (obj.get("apiVersion"), obj.get("kind")) in CRD_SPECS:
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
