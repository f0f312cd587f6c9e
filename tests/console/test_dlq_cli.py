"""``eventfleet dlq list|replay``, and the console of a fleet with default settings: read-only."""

from __future__ import annotations

import asyncio
import uuid

import orjson
import pytest

from tests.cli import eventfleet
from tests.console.conftest import dead_letter_of, poison_order, stored
from tests.fleet import FleetProcess, order_items
from tests.waiting import wait_for
from workers.cli.entry import main
from workers.devtools.embedded import free_port
from workers.roles.ops.dlq_replay import DeadLetterEntry


@pytest.fixture(scope="module")
async def poisoned(console_fleet: FleetProcess) -> tuple[str, DeadLetterEntry]:
    order_id = f"cli-{uuid.uuid4().hex[:8]}"
    entry = await dead_letter_of(console_fleet, await poison_order(console_fleet, order_id))
    return order_id, entry


FIX = orjson.dumps({"items": order_items(1)}).decode()


async def test_the_console_refuses_actions_when_read_only_naming_the_setting(
    fleet: FleetProcess,
) -> None:
    entry = await dead_letter_of(fleet, await poison_order(fleet, f"ro-{uuid.uuid4().hex[:8]}"))
    for step in ("confirm", "replay"):
        status, body = await fleet.post(f"/console/dlq/{entry.position}/{step}", raw=b"x=1")
        assert status == 403
        assert body["error"] == "console_read_only"
        assert body["setting"] == "EVENTFLEET_CONSOLE_ACTIONS"
        assert "EVENTFLEET_CONSOLE_ACTIONS=true" in body["message"]
    status, page = await fleet.get(f"/console/dlq/{entry.position}")
    assert status == 200 and 'id="read-only"' in page and "<textarea" not in page
    status, page = await fleet.get("/console/login")
    assert status == 200 and "(read-only)" in page  # the sign-in page says what the console is
    for bad, code in (("/console/dlq/0/999999", 404), ("/console/types/spaceship", 404)):
        status, page = await fleet.get(bad)
        assert status == code and 'id="error"' in page, page
    status, page = await fleet.get("/console/aggregates/order/x?at_version=zero")
    assert status == 400 and "at_version=&#x27;zero&#x27; must be a whole number" in page
    status, page = await fleet.get("/console/aggregates/order/x?as_of=yesterday")
    assert status == 400 and "as_of" in page and 'id="error"' in page


async def test_list_shows_the_entry_as_text_and_json(
    console_fleet: FleetProcess,
    poisoned: tuple[str, DeadLetterEntry],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    order_id, entry = poisoned
    code, out, err = await eventfleet(
        "dlq", "list", "--json", "--reason", "invalid_data", env=console_fleet.env
    )
    assert code == 0, err
    [listed] = [e for e in orjson.loads(out) if e["aggregate_id"] == order_id]
    assert (listed["position"], listed["reason"], listed["type"]) == (
        entry.position,
        "invalid_data",
        "OrderPlaced",
    )
    run = (console_fleet, monkeypatch, capsys)
    code, out, _ = await in_thread(*run, "dlq", "list", "--reason", "oversized")
    assert code == 0 and order_id not in out and "0 dead letters" in out
    code, out, _ = await in_thread(*run, "dlq", "list")
    assert code == 0 and f"{entry.position} " in out and order_id in out


async def test_replay_asks_first_then_stores_the_fix_once_and_audits(
    console_fleet: FleetProcess,
    poisoned: tuple[str, DeadLetterEntry],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    order_id, entry = poisoned
    replay = ("dlq", "replay", entry.position, "--data", FIX, "--operator", "ci-bot")
    code, out, err = await eventfleet(*replay, stdin=b"n\n", env=console_fleet.env)
    assert code == 1 and "not confirmed; nothing was re-submitted" in err
    assert entry.event is not None and f"dlq-replay:{entry.event.id}" in out
    assert f"POST /v1/order/{order_id}/events" in out

    run = (console_fleet, monkeypatch, capsys)
    code, out, err = await in_thread(*run, *replay[:4], '{"items": []}', *replay[5:], "--yes")
    assert code == 1 and out.splitlines()[-2].startswith("422 "), out + err  # still invalid

    # The second replay answers the first one's outcome and adds nothing.
    for code, out, err in (
        await eventfleet(*replay, "--yes", env=console_fleet.env),  # the real command, once
        await in_thread(*run, *replay, "--yes"),
    ):
        assert code == 0, err
        assert out.splitlines()[-2].startswith("202 "), out

    status, _ = await console_fleet.post(
        f"/v1/order/{order_id}/events", {"type": "OrderPaid", "data": {"amount": 2.5}}
    )
    assert status == 202

    async def both() -> bool:
        return len(await stored(console_fleet, "order", order_id)) == 2

    await wait_for(both, timeout_s=60, what="the fix and the payment stored")
    events = await stored(console_fleet, "order", order_id)
    assert [(e["type"], e["data"]) for e in events] == [
        ("OrderPlaced", orjson.loads(FIX)),
        ("OrderPaid", {"amount": 2.5}),
    ]
    status, page = await console_fleet.get("/console/audit")
    # the refused fix and both replays; the prompt answered "n" is no action
    assert status == 200 and page.count("ci-bot") == 3


async def test_one_dead_letter_replayed_from_two_places_at_once_and_elsewhere_stores_one_event(
    console_fleet: FleetProcess,
) -> None:
    """Its identity is its entry (issue 19): two operators replaying it at once, each aimed at
    another aggregate, and a third later at yet another, store one event; the others are told
    what the first replay did, and nothing of theirs reaches the command path."""
    run = uuid.uuid4().hex[:8]
    order_id = f"twice-{run}"
    entry = await dead_letter_of(console_fleet, await poison_order(console_fleet, order_id))
    assert entry.event is not None
    targets = [f"{order_id}-a", f"{order_id}-b", f"{order_id}-c"]

    def replay(target: str, operator: str) -> tuple[str, ...]:
        submission = {"aggregate_type": "order", "aggregate_id": target, "type": "OrderPlaced",
                      "data": orjson.loads(FIX)}  # fmt: skip
        return ("dlq", "replay", entry.position, "--yes", "--operator", operator,
                "--submission", orjson.dumps(submission).decode())  # fmt: skip

    at_once = await asyncio.gather(
        eventfleet(*replay(targets[0], "alice"), env=console_fleet.env),
        eventfleet(*replay(targets[1], "bob"), env=console_fleet.env),
    )
    later = await eventfleet(*replay(targets[2], "carol"), env=console_fleet.env)
    answers = [
        orjson.loads(out.splitlines()[-2].split(" ", 1)[1]) for _, out, _ in (*at_once, later)
    ]
    statuses = [int(out.splitlines()[-2].split(" ", 1)[0]) for _, out, _ in (*at_once, later)]
    assert sorted(statuses[:2]) == [202, 409] and statuses[2] == 409, (statuses, answers)
    winner = statuses.index(202)
    for i, (code, answer) in enumerate(
        zip([c for c, _, _ in (*at_once, later)], answers, strict=True)
    ):
        if i == winner:
            assert code == 0
            continue
        assert code == 1 and answer["error"] == "already_replayed", answer
        first = answer["first_replay"]
        assert first["operator"] == ("alice", "bob")[winner], first
        assert first["submitted"]["aggregate_id"] == targets[winner], first

    await wait_for(lambda: stored(console_fleet, "order", targets[winner]), timeout_s=60,
                   what="the first replay stored")  # fmt: skip
    counts = [len(await stored(console_fleet, "order", target)) for target in targets]
    assert counts == [1 if i == winner else 0 for i in range(3)], counts
    for i, target in enumerate(targets):
        if i != winner:  # never submitted: no command of it is known anywhere
            status, body = await console_fleet.get(
                f"/v1/order/{target}/outcome?command_id={entry.command_id}"
            )
            assert (status, body["outcome"]) == (404, "none"), body
    print(f"dead letter replayed 3 times (2 at once), aimed at 3 aggregates: stored "
          f"{sum(counts)}, told already_replayed {statuses.count(409)}")  # fmt: skip


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("nonsense", "--yes"), 2, "must be named <partition>/<offset>"),
        (("0/1", "--yes", "--operator", " "), 2, "operator name"),
        (("{position}", "--yes", "--submission", "{bad"), 2, "not valid JSON"),
        (("{position}", "--yes", "--data", "{}", "--submission", "{}"), 2, "not both"),
        (("{position}", "--yes", "--data", "[1]"), 2, "'data' must be a JSON object"),
        (("0/999999", "--yes"), 1, "has no entry 0/999999"),
    ],
)
def test_replay_errors_are_one_line_with_their_exit_code(
    console_fleet: FleetProcess,
    poisoned: tuple[str, DeadLetterEntry],
    args: tuple[str, ...],
    code: int,
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # In process (a sync test: main() runs its own loop), to spare an interpreter per case.
    _, entry = poisoned
    err = in_process(console_fleet, monkeypatch, capsys, "dlq", "replay",
                     *(a.replace("{position}", entry.position) for a in args), code=code)  # fmt: skip
    assert message in err


def test_list_without_kafka_fails_in_one_line(
    console_fleet: FleetProcess, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("EVENTFLEET_KAFKA_URL", f"kafka://127.0.0.1:{free_port()}")
    err = in_process(
        console_fleet,
        monkeypatch,
        capsys,
        "dlq",
        "list",
        code=1,
        keep=frozenset({"EVENTFLEET_KAFKA_URL"}),
    )
    assert err.startswith("eventfleet: error: Kafka did not let") and "events.dlq" in err


async def in_thread(
    fleet: FleetProcess,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    *argv: str,
) -> tuple[int, str, str]:
    """``eventfleet *argv`` in this process (its own loop, in a thread): no interpreter start."""
    for name, value in fleet.env.items():
        monkeypatch.setenv(name, value)
    capsys.readouterr()
    code = await asyncio.to_thread(main, list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def in_process(
    fleet: FleetProcess,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    *argv: str,
    code: int,
    keep: frozenset[str] = frozenset(),
) -> str:
    """Run ``eventfleet *argv`` in this process with the fleet's settings; its one stderr line."""
    for name, value in fleet.env.items():
        if name not in keep:
            monkeypatch.setenv(name, value)
    got = main(list(argv))
    err = capsys.readouterr().err
    assert (got, len(err.strip().splitlines())) == (code, 1), err
    assert err.startswith("eventfleet: error: "), err
    return err
