"""The probe answers, built from memory only: they never wait on a dependency."""

from __future__ import annotations

from typing import TYPE_CHECKING

from workers.runtime.answers import Answer

if TYPE_CHECKING:
    from workers.runtime.fleet import Fleet


def health_answer(fleet: Fleet, *, verbose: bool = False) -> Answer:
    """``/healthz``: 200 while the process works; ``?verbose`` adds dependencies and readiness."""
    alive = fleet.alive()
    body: dict[str, object] = {
        "status": "alive" if alive else "failed",
        "roles": sorted(fleet.roles),
    }
    if verbose:
        body["dependencies"] = fleet.health.snapshot()
        body["ready"] = fleet.readiness()
        # Who may call: "none" here means the API and the console are open to anyone.
        body["auth"] = fleet.door.mode
    return Answer(200 if alive else 503, body)


def ready_answer(fleet: Fleet) -> Answer:
    """``/readyz``: 200 when the process can take the work it owns (not dependency health);
    ``idle``: its group gave it no partition (more members than partitions), ready all the same."""
    checks = fleet.readiness()
    status = 200 if all(checks.values()) else 503
    return Answer(status, {"ready": status == 200, "checks": checks, "idle": fleet.idle()})
