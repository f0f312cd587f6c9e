"""What a consumer process holds of its group (``workers.runtime.membership``), as the rebalance
signals say: its share per topic, none while a rebalance goes on, idle when given none; a
table's changelog, assigned beside its topic, is not counted."""

from __future__ import annotations

from faust.types import TP

from workers.metrics import Metrics, create_metrics
from workers.runtime.membership import Membership

CHANGELOG = "fleet.snapshot-rules.changelog"


def sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


async def test_a_member_holds_its_share_then_none_during_a_rebalance_then_is_idle() -> None:
    metrics = create_metrics()
    membership = Membership(metrics, "snapshotter", changelogs=lambda: {CHANGELOG})
    assert not membership.assigned and not membership.idle  # before its first assignment
    stored = [TP("fleet.events.stored", p) for p in (0, 3)]
    await membership.on_assigned(None, [*stored, TP(CHANGELOG, 0), TP(CHANGELOG, 3)])
    assert membership.assigned and not membership.idle
    assert membership.held() == {"fleet.events.stored": 2}
    labels = {"role": "snapshotter", "topic": "fleet.events.stored"}
    assert sample(metrics, "eventfleet_assigned_partitions", **labels) == 2
    assert sample(metrics, "eventfleet_assigned_partitions", role="snapshotter",
                  topic=CHANGELOG) is None  # fmt: skip
    await membership.on_revoked(None, stored)
    assert not membership.assigned and not membership.idle and membership.held() == {}
    assert sample(metrics, "eventfleet_assigned_partitions", **labels) == 0
    await membership.on_assigned(None, None)  # the group has more members than partitions
    assert membership.assigned and membership.idle
    assert sample(metrics, "eventfleet_role_idle", role="snapshotter") == 1
    assert sample(metrics, "eventfleet_assigned_partitions", **labels) == 0  # not gone
    await membership.on_assigned(None, [TP("fleet.events.stored", 1)])
    assert not membership.idle
    assert sample(metrics, "eventfleet_role_idle", role="snapshotter") == 0
