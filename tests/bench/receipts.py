"""The chat room's fold with read receipts: per-event cost and state bytes with 0, 1,000 and
10,000 readers, interleaved in one run (``python -m tests.bench.receipts [EVENTS]``).

Each room first holds 100 messages and one receipt per reader (built by the same fold, timed
as "build"); then EVENTS events are folded onto it, through the replay reducer and the view's
apply alike: with readers, every other event is a receipt by a kept reader moving forward and
the rest are messages sent, edited and deleted; the no-receipt baseline folds the same message
events and no receipt. The ratio is each row's per-event time over the baseline's, measured in
the same run. CPU per event is process time. With ``--old=REV`` it also folds 1,000 readers
with ``chat_rules`` at git revision REV (one before receipts were bounded, e.g. 1032e1d) for
comparison, on fewer events.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from snapshot_rules.replay import State
from topics.envelope import Event, new_event
from workers.examples.domains.chat_room import chat_room_domain

T0 = datetime(2026, 3, 1, tzinfo=UTC)
WINDOW = 100
Fold = Callable[[State | None, Event], State]


def ev(kind: str, version: int, **data: Any) -> Event:
    return new_event("chat_room", "bench", kind, data, version=version,
                     occurred_at=T0 + timedelta(milliseconds=version))  # fmt: skip


def built(readers: int) -> tuple[list[Event], int]:
    """The events that open a room: WINDOW messages, then one receipt per reader."""
    events = [ev("MessageSent", v, message_id=f"m{v}", sender_id=f"s{v % 13}",
                 content="a chat message of ordinary length") for v in range(1, WINDOW + 1)]  # fmt: skip
    version = WINDOW
    for r in range(readers):
        version += 1
        events.append(ev("MessageRead", version, reader_id=f"reader-{r:05d}",
                         up_to_message_id=f"m{1 + r % WINDOW}"))  # fmt: skip
    return events, version


def stream(n: int, start: int, readers: int) -> list[Event]:
    """n events after ``start``: messages sent, edited, deleted and (with readers) receipts."""
    out: list[Event] = []
    version, sent = start, WINDOW
    while len(out) < n:
        version += 1
        step = len(out)
        if readers and step % 2 == 1:  # a kept reader reads up to the newest message
            reader = f"reader-{(readers - 1 - step // 2) % readers:05d}"
            out.append(ev("MessageRead", version, reader_id=reader, up_to_message_id=f"m{sent}"))
        elif step % 10 == 4:
            target = f"m{sent - 3}"
            out.append(ev("MessageEdited", version, message_id=target,
                          sender_id=f"s{(sent - 3) % 13}", content="edited"))  # fmt: skip
        elif step % 10 == 8:
            target = f"m{sent - 5}"
            out.append(ev("MessageDeleted", version, message_id=target,
                          sender_id=f"s{(sent - 5) % 13}"))  # fmt: skip
        else:
            sent += 1
            out.append(ev("MessageSent", version, message_id=f"m{sent}",
                          sender_id=f"s{sent % 13}", content="a chat message"))  # fmt: skip
    return out


def fold(reduce: Fold, state: State | None, events: list[Event]) -> tuple[State, float]:
    began = time.process_time()
    for event in events:
        state = reduce(state, event)
    assert state is not None
    return state, time.process_time() - began


def row(name: str, readers: int, n: int, reduce: Fold, apply: Fold) -> dict[str, Any]:
    opening, start = built(readers)
    room, build = fold(reduce, None, opening)
    more = stream(n, start, readers)
    after, replay_s = fold(reduce, room, more)
    view, view_s = fold(apply, room, more)
    assert view["counts"] == after["counts"]
    return {"row": name, "readers": readers, "kept": len(after.get("reads", {})),
            "build_s": build, "replay_ms": replay_s / n * 1e3, "view_ms": view_s / n * 1e3,
            "bytes": len(orjson.dumps(after))}  # fmt: skip


def old_fold(revision: str) -> tuple[Fold, Fold]:
    """The fold of ``chat_rules`` at git ``revision`` (one from before receipts were bounded)."""
    source = subprocess.run(
        ["git", "show", f"{revision}:workers/examples/domains/chat_rules.py"],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    folder = Path(tempfile.mkdtemp())
    (folder / "old_chat_rules.py").write_text(source)
    spec = importlib.util.spec_from_file_location("old_chat_rules", folder / "old_chat_rules.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["old_chat_rules"] = module
    spec.loader.exec_module(module)
    rules = module.ChatRules()
    return rules.reduce, rules.apply_view


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    n = int(args[0]) if args else 20_000
    capped = chat_room_domain()  # the default cap: 1,000 readers
    wide = chat_room_domain(readers=10_000)
    rows = []
    for _ in range(2):  # interleaved rounds; the best of each row is kept
        for name, readers, domain in (("no receipts", 0, capped), ("1,000 readers", 1000, capped),
                                      ("10,000 readers, cap 1,000", 10_000, capped),
                                      ("10,000 readers, cap 10,000", 10_000, wide)):  # fmt: skip
            rows.append(row(name, readers, n, domain.reducer, domain.projections[0].apply))
    old = next((a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--old=")), None)
    if old is not None:
        reduce, apply = old_fold(old)
        rows.append(row("1,000 readers, unbounded fold (before)", 1000, max(200, n // 50),
                        reduce, apply))  # fmt: skip
    best: dict[str, dict[str, Any]] = {}
    for r in rows:
        if r["row"] not in best or r["replay_ms"] + r["view_ms"] < (
            best[r["row"]]["replay_ms"] + best[r["row"]]["view_ms"]
        ):
            best[r["row"]] = r
    base = best["no receipts"]
    print(f"{n} events per row, per-event CPU (process time), best of 2 interleaved rounds")
    print(f"{'row':40} {'kept':>6} {'build s':>8} {'replay ms':>10} {'view ms':>9} "
          f"{'ratio':>6} {'bytes':>9}")  # fmt: skip
    for r in best.values():
        ratio = (r["replay_ms"] + r["view_ms"]) / (base["replay_ms"] + base["view_ms"])
        print(f"{r['row']:40} {r['kept']:>6} {r['build_s']:>8.3f} {r['replay_ms']:>10.4f} "
              f"{r['view_ms']:>9.4f} {ratio:>6.2f} {r['bytes']:>9}")  # fmt: skip


if __name__ == "__main__":
    main()
