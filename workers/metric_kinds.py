"""The kinds a metric is declared as, and how ``create`` makes each against a registry:
prometheus_client's counter, gauge and histogram, and the loop collectors (counted by the event
loop alone, without prometheus_client's lock: for paths that count every delivered event)."""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Literal, TypeVar, cast

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

Kind = Literal["counter", "gauge", "histogram", "loop_counter", "loop_histogram"]
D = TypeVar("D", bound="DataclassInstance")
_DECLARED = "eventfleet.metric"
"""The key of a field's metadata that holds its ``Declared``."""
_go_string: Callable[[float], str] = floatToGoString
"""A bucket bound as Prometheus writes it (``+Inf``), typed here: prometheus_client's is not."""


@dataclass(frozen=True, slots=True)
class Declared:
    """One metric as declared: what it is called, says and is labelled by; made by ``make``."""

    kind: Kind
    name: str
    documentation: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()

    def make(self, registry: CollectorRegistry) -> object:
        """The collector, registered in ``registry`` (a name taken twice there raises)."""
        name, doc, labels = self.name, self.documentation, self.labels
        match self.kind:
            case "counter":
                return Counter(name, doc, labels, registry=registry)
            case "gauge":
                return Gauge(name, doc, labels, registry=registry)
            case "histogram":
                return Histogram(name, doc, labels, buckets=self.buckets, registry=registry)
            case "loop_counter":
                (label,) = labels
                return LoopCounter(name, doc, label, registry)
            case "loop_histogram":
                return LoopHistogram(name, doc, self.buckets, registry)


def declared(cls: type[DataclassInstance]) -> list[tuple[str, Declared]]:
    """The metrics a dataclass declares, by field name, in the order it declares them."""
    return [(f.name, f.metadata[_DECLARED]) for f in fields(cls) if _DECLARED in f.metadata]


def create(cls: type[D], registry: CollectorRegistry) -> D:
    """``cls`` with each declared metric made against ``registry`` (and ``registry`` itself, if
    it has such a field)."""
    made = {name: metric.make(registry) for name, metric in declared(cls)}
    if "registry" in {f.name for f in fields(cls)}:
        made["registry"] = registry
    return cls(**made)


# A declaration is typed as what ``create`` makes of it, so mypy holds the annotation of each
# field to its kind (``x: Gauge = counter(...)`` is an error). The dataclass sees a field
# without a default: only ``create`` builds one.


def counter(name: str, documentation: str, *, labels: tuple[str, ...] = ()) -> Counter:
    return cast(Counter, _field(Declared("counter", name, documentation, labels)))


def gauge(name: str, documentation: str, *, labels: tuple[str, ...] = ()) -> Gauge:
    return cast(Gauge, _field(Declared("gauge", name, documentation, labels)))


def histogram(
    name: str, documentation: str, *, labels: tuple[str, ...] = (), buckets: tuple[float, ...]
) -> Histogram:
    return cast(Histogram, _field(Declared("histogram", name, documentation, labels, buckets)))


def loop_counter(name: str, documentation: str, *, label: str) -> LoopCounter:
    return cast(LoopCounter, _field(Declared("loop_counter", name, documentation, (label,))))


def loop_histogram(name: str, documentation: str, *, buckets: tuple[float, ...]) -> LoopHistogram:
    made = Declared("loop_histogram", name, documentation, buckets=buckets)
    return cast(LoopHistogram, _field(made))


def _field(metric: Declared) -> object:
    return field(metadata={_DECLARED: metric})


class LoopCounter:
    """A counter by one label, counted by the event loop alone: an ``inc`` is an addition, no
    lock (prometheus_client's takes one per call, several microseconds, on a path that counts
    every event delivered to every live subscriber). Collected as a prometheus_client
    ``Counter`` is (``<name>_total`` and ``<name>_created`` per label value)."""

    def __init__(self, name: str, documentation: str, label: str, registry: CollectorRegistry):
        self._name = name.removesuffix("_total")
        self._documentation = documentation
        self._label = label
        self._children: dict[str, LoopCount] = {}
        registry.register(self)

    def labels(self, value: str) -> LoopCount:
        child = self._children.get(value)
        if child is None:
            child = self._children[value] = LoopCount()
        return child

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self._name, self._documentation, labels=[self._label])
        for value, child in tuple(self._children.items()):
            family.add_metric([value], child.value, created=child.created)
        yield family

    def describe(self) -> Iterator[Metric]:
        yield CounterMetricFamily(self._name, self._documentation, labels=[self._label])


class LoopCount:
    """One label value of a ``LoopCounter``."""

    __slots__ = ("created", "value")

    def __init__(self) -> None:
        self.value = 0.0
        self.created = time.time()

    def inc(self, amount: float = 1) -> None:
        self.value += amount


class LoopHistogram:
    """A histogram observed by the event loop alone: an ``observe`` is a bisection and two
    additions, no lock. Collected as a prometheus_client ``Histogram`` without labels is."""

    def __init__(
        self, name: str, documentation: str, buckets: Iterable[float], registry: CollectorRegistry
    ):
        self._name = name
        self._documentation = documentation
        self._bounds = sorted(buckets)
        self._counts = [0] * (len(self._bounds) + 1)  # the last one: above every bound
        self._sum = 0.0
        self._created = time.time()
        registry.register(self)

    def observe(self, amount: float, times: int = 1) -> None:
        """``amount`` observed ``times`` times (the deliveries of one event in one turn)."""
        self._counts[bisect_left(self._bounds, amount)] += times
        self._sum += amount * times

    def collect(self) -> Iterator[Metric]:
        counts, total, buckets = tuple(self._counts), 0, []
        for bound, count in zip([*self._bounds, float("inf")], counts, strict=True):
            total += count
            buckets.append((_go_string(bound), float(total)))
        family = HistogramMetricFamily(
            self._name, self._documentation, buckets=buckets, sum_value=self._sum
        )
        yield family
        created = Metric(f"{self._name}_created", self._documentation, "gauge")
        created.add_sample(f"{self._name}_created", {}, self._created)
        yield created

    def describe(self) -> Iterator[Metric]:
        yield HistogramMetricFamily(self._name, self._documentation)
