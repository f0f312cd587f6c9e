"""The ``eventfleet`` command: help, settings errors, ``topics ensure`` against the embedded broker."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from tests.cli import EXAMPLES, assert_one_line, eventfleet
from tests.keys import TEST_MASTER_KEY
from tests.waiting import within
from topics.catalog import TopicNames
from workers.adapters.kafka import ensure_topics
from workers.cli import main, parser
from workers.devtools.embedded import EmbeddedStack
from workers.runtime.connections import fleet_catalog, kafka_config
from workers.runtime.loading import load_domains
from workers.runtime.settings import Settings
from workers.secrets import Secrets


async def test_help_lists_the_commands_and_every_variable() -> None:
    code, out, _ = await eventfleet("--help")
    assert code == 0
    for command in ("dev", "worker", "topics", "projections", "replay", "bench", "audit", "dlq"):
        assert command in out
    for variable in (
        "EVENTFLEET_KAFKA_URL",
        "EVENTFLEET_MONGO_URL",
        "EVENTFLEET_REDIS_URL",
        "EVENTFLEET_PARTITIONS",
    ):
        assert variable in out


async def test_a_bad_setting_stops_the_command_and_names_the_variable() -> None:
    code, _, err = await eventfleet("topics", "ensure", env={"EVENTFLEET_PARTITIONS": "-3"})
    assert code == 2
    assert "EVENTFLEET_PARTITIONS='-3' is invalid" in err


async def test_a_projection_worker_without_its_name_is_a_usage_error() -> None:
    code, _, err = await eventfleet("worker", "--role", "projection")
    assert code == 2
    assert_one_line(err)
    assert "--projection NAME" in err


async def test_an_unknown_projection_fails_before_connecting() -> None:
    code, _, err = await eventfleet(
        "worker",
        "--role",
        "projection",
        "--projection",
        "nope",
        env={"EVENTFLEET_KAFKA_URL": "kafka://127.0.0.1:1"},
    )
    assert code == 2 and "nope" in err  # a usage mistake
    assert_one_line(err)


async def test_topics_ensure_creates_missing_topics_and_reports_mismatches(
    stack: EmbeddedStack, unique_name: str
) -> None:
    env = {
        "EVENTFLEET_KAFKA_URL": stack.urls.kafka_url,
        "EVENTFLEET_TOPIC_PREFIX": f"{unique_name}.",
        "EVENTFLEET_PARTITIONS": "3",
        **EXAMPLES,
    }
    settings = Settings.from_env(env)
    names = TopicNames(settings.topic_prefix)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(names.dlq, 1, 1)]
        )  # exists with the wrong partition count
    finally:
        await admin.close()

    code, out, err = await eventfleet("topics", "ensure", env=env)
    assert code == 1, err  # a mismatch is reported and fails the command
    assert f"mismatch  {names.dlq} has 1 partitions, the catalog says 3" in out
    assert f"created   {names.events}" in out and f"created   {names.name('orders')}" in out

    specs = fleet_catalog(settings, load_domains(settings.domains))
    reports = await ensure_topics(kafka_config(settings, Secrets()), specs)  # PLAINTEXT
    again = {report.name: report.status for report in reports}
    assert again[names.events] == "ok" and again[names.dlq] == "mismatch"
    assert set(again) == {spec.name for spec in specs}


async def test_topics_ensure_with_kafka_down_is_a_clear_error() -> None:
    code, _, err = await eventfleet(
        "topics",
        "ensure",
        env={"EVENTFLEET_KAFKA_URL": "kafka://127.0.0.1:1", "EVENTFLEET_KAFKA_TIMEOUT_MS": "500"},
    )
    assert code == 1 and "did not answer" in err
    assert_one_line(err)


async def test_version_comes_from_the_package_metadata() -> None:
    code, out, _ = await eventfleet("--version")
    assert code == 0 and out.strip() == f"eventfleet {version('eventfleet')}"


async def test_version_imports_nothing_of_the_fleet() -> None:
    """``--version`` answers from the package metadata before the command line, the settings or
    any driver is imported (those took seconds on a loaded machine)."""
    probe = (
        "import sys; from workers.cli import main; code = main(['--version']); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('workers', 'topics', 'snapshot_rules', 'pydantic', 'faust', 'pymongo', 'aiokafka')))"
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", probe, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await within(process.communicate(), timeout_s=60, what="the --version probe to exit")
    first, loaded = out.decode().splitlines()
    assert first == f"eventfleet {version('eventfleet')}"
    assert loaded == "['workers', 'workers.cli', 'workers.cli.version']"
    code, out, err = await eventfleet("--version", "dev")  # not alone: argparse decides
    assert code == 0 and out.strip() == f"eventfleet {version('eventfleet')}", err


async def test_bench_refuses_a_plot_it_cannot_write_before_starting_anything(
    tmp_path: Path,
) -> None:
    code, _, err = await eventfleet(
        "bench", "scale", "--plot", str(tmp_path / "nowhere" / "scale.svg"),
        env={"TMPDIR": str(tmp_path)},
    )  # fmt: skip
    assert code == 2
    assert_one_line(err)
    assert f"the folder {tmp_path / 'nowhere'} does not exist" in err
    assert os.listdir(tmp_path) == []  # no stack, no run directory: nothing started


async def test_dev_refuses_a_taken_port_before_loading_the_stack_or_the_fleet() -> None:
    """The clear error at once: nothing of the stack or the fleet imported, nothing started."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        probe = (
            "import sys; from workers.cli import main; "
            f"code = main(['dev', '--port', '{port}']); "
            "print(code, [m for m in ('workers.devtools.dev', 'workers.devtools.embedded', "
            "'workers.http', 'faust') if m in sys.modules])"
        )
        clean = {k: v for k, v in os.environ.items() if not k.startswith("EVENTFLEET_")}
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", probe, env=clean,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await within(
            process.communicate(), timeout_s=60, what="dev on a taken port to exit"
        )
    assert out.decode().split() == ["1", "[]"], err.decode()
    assert_one_line(err.decode())
    assert f"port {port} on 127.0.0.1 is already in use" in err.decode()
    assert "--port 0 for any free port" in err.decode()


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (("bench", "commands", "--events", "1"), "must be at least 2, got 1"),
        (("bench", "commands", "--events", "0"), "must be at least 2, got 0"),
        (("bench", "commands", "--events", "-5"), "must be at least 2, got -5"),
        (("bench", "commands", "--events", "many"), "expected a whole number"),
        (("replay", "order", "o-1", "--at-version", "0"), "must be at least 1, got 0"),
        (("dev", "--port", "70000"), "from 0 to 65535"),
        (("dev", "--demo-scale", "0"), "must be above 0"),
        (("topics",), "required"),
        (("nope",), "invalid choice"),
        (("devv",), "invalid choice: 'devv' (did you mean 'dev'?)"),
        (("dev", "--prot", "0"), "dev: unrecognized arguments: --prot 0 (did you mean '--port'?)"),
        (("dev", "--demo-sclae=2"), "--demo-sclae=2 (did you mean '--demo-scale'?)"),
        (
            ("topics", "ensure", "--x"),
            "topics ensure: unrecognized arguments: --x; see 'eventfleet topics ensure --help'",
        ),
        (("worker", "--role", "all", "extra"), "worker: unrecognized arguments: extra;"),
    ],
)
def test_a_usage_error_is_one_line_naming_the_fix_and_exits_2(
    args: tuple[str, ...], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(list(args))  # argparse stops before any setting is read or service reached
    out, err = capsys.readouterr()
    assert exited.value.code == 2 and out == ""
    assert_one_line(err)
    assert named in err and "--help" in err


def help_of(capsys: pytest.CaptureFixture[str], *command: str) -> str:
    with pytest.raises(SystemExit) as exited:
        parser().parse_args([*command, "--help"])
    assert exited.value.code == 0
    return capsys.readouterr().out


def test_every_subcommand_has_a_description_and_shows_its_defaults(
    capsys: pytest.CaptureFixture[str],
) -> None:
    commands = (
        ("dev",), ("worker",), ("topics",), ("topics", "ensure"), ("topics", "check"),
        ("projections",), ("projections", "rebuild"), ("audit",), ("replay",), ("bench",),
        ("dlq",), ("dlq", "list"), ("dlq", "replay"),
    )  # fmt: skip
    for command in commands:
        description = help_of(capsys, *command).split("\n\n")[1]  # after the usage block
        assert len(description) > 40, command
        assert not description.startswith(("options", "positional")), command
    assert "(default: 20000)" in " ".join(help_of(capsys, "bench").split())
    assert "(default: 2.0)" in " ".join(help_of(capsys, "audit").split())


@pytest.mark.parametrize(
    ("domains", "named"),
    [
        ("tests.e2e.counting:TALLY", "names a Domain, not a function"),
        ("tests.integration.bad_domains:typo_in_after", "did you mean 'DeviceRegistered'?"),
        ("tests.integration.bad_domains:not_domains", "returned list, not Domains"),
        ("tests.integration.nowhere:domains", "cannot be imported"),
    ],
)
async def test_a_bad_domain_set_is_one_line_naming_the_fix(domains: str, named: str) -> None:
    code, _, err = await eventfleet(
        "replay", "tally", "t-1",
        env={"EVENTFLEET_DOMAINS": domains, "EVENTFLEET_MONGO_URL": "mongodb://127.0.0.1:1"},
    )  # fmt: skip
    assert code == 2, err
    assert_one_line(err)
    assert named in err and "EVENTFLEET_DOMAINS" in err


@pytest.mark.parametrize(
    "command",
    [("worker", "--role", "commands"), ("replay", "order", "o-1"), ("audit",), ("topics", "check")],
    ids=lambda c: c[0],
)
async def test_without_domains_a_worker_and_every_store_command_refuse_in_one_line(
    command: tuple[str, ...],
) -> None:
    """No silent demo in production: the examples run only under `eventfleet dev`."""
    env = {"EVENTFLEET_MONGO_URL": "mongodb://127.0.0.1:1", "EVENTFLEET_AUTH": "none"}
    code, _, err = await eventfleet(*command, env=env, domains=False)
    assert code == 2, err
    assert_one_line(err)
    assert "EVENTFLEET_DOMAINS is not set" in err and "myapp.domains:enabled" in err


async def test_dev_with_a_bad_domain_set_fails_before_starting_anything() -> None:
    code, _, err = await eventfleet(
        "dev", "--port", "0", env={"EVENTFLEET_DOMAINS": "tests.e2e.counting:TALLY"}
    )
    assert code == 2
    assert_one_line(err)
    assert "names a Domain, not a function" in err


async def test_dev_on_a_taken_port_names_the_port_flag() -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        code, _, err = await eventfleet("dev", "--port", str(port))
    assert code == 1
    assert_one_line(err)
    assert f"port {port}" in err and "--port 0" in err


async def test_dev_refuses_a_bad_redis_url_before_starting_anything() -> None:
    code, _, err = await eventfleet("dev", "--port", "0", "--redis", "http://127.0.0.1:6379")
    assert code == 2
    assert_one_line(err)
    assert "--redis" in err and "redis://" in err


async def test_replay_of_an_aggregate_without_events_says_so_in_one_line(
    stack: EmbeddedStack, unique_name: str
) -> None:
    env = {"EVENTFLEET_MONGO_URL": stack.urls.mongo_url, "EVENTFLEET_MONGO_DATABASE": unique_name}
    code, out, err = await eventfleet("replay", "order", "nope", env=env)
    assert code == 1 and out == ""
    assert_one_line(err)
    assert "order nope has no events" in err


async def test_replay_of_an_unknown_type_fails_before_connecting() -> None:
    code, _, err = await eventfleet(
        "replay", "ordr", "o-1", env={"EVENTFLEET_MONGO_URL": "mongodb://127.0.0.1:1"}
    )
    assert code == 2  # a usage mistake (the issue: "replay ordr o-1" exited 1)
    assert_one_line(err)
    assert "'ordr'" in err and "order" in err


async def test_replay_with_the_store_down_is_one_line() -> None:
    code, _, err = await eventfleet(
        "replay", "order", "o-1",
        env={"EVENTFLEET_MONGO_URL": "mongodb://127.0.0.1:1", "EVENTFLEET_MONGO_TIMEOUT_MS": "300"},
    )  # fmt: skip
    assert code == 1
    assert_one_line(err)


async def test_topics_check_creates_nothing_and_reports_missing_topics_as_json(
    stack: EmbeddedStack, unique_name: str
) -> None:
    env = {
        "EVENTFLEET_KAFKA_URL": stack.urls.kafka_url,
        "EVENTFLEET_TOPIC_PREFIX": f"{unique_name}.",
    }
    code, out, _ = await eventfleet("topics", "check", "--json", env=env)
    assert code == 1
    reports = json.loads(out)
    assert reports and {r["status"] for r in reports} == {"missing"}
    code, out, _ = await eventfleet("topics", "ensure", "--json", env=env)
    assert code == 0 and {r["status"] for r in json.loads(out)} == {"created"}
    code, out, err = await eventfleet("topics", "check", env=env)
    assert code == 0 and err == "" and out.count("ok ") == len(reports)


async def test_replay_pages_by_version_and_says_where_the_next_page_starts(
    stack: EmbeddedStack, unique_name: str
) -> None:
    from tests.chat_events import room_events
    from workers.adapters.mongo import MongoEventStore, connect, database

    client = connect(stack.urls.mongo_url, timeout_ms=5000)
    try:
        store = MongoEventStore(database(client, unique_name))
        await store.ensure_indexes()
        await store.append(room_events("r1", [("MessageSent", f"m{i}", "ann") for i in range(7)]))
    finally:
        await client.close()
    env = {"EVENTFLEET_MONGO_URL": stack.urls.mongo_url, "EVENTFLEET_MONGO_DATABASE": unique_name}
    seen: list[int] = []
    after = 0
    while True:
        code, out, err = await eventfleet(
            "replay", "chat_room", "r1", "--after-version", str(after), "--limit", "3", "--json",
            env=env,
        )  # fmt: skip
        assert code == 0, err
        page = json.loads(out)
        seen += [e["version"] for e in page["events"]]
        assert page["version"] == 7  # the state is always the whole history's
        if not page["more"]:
            break
        after = page["next_after_version"]
    assert seen == list(range(1, 8))
    code, out, err = await eventfleet("replay", "chat_room", "r1", "--limit", "2", env=env)
    assert code == 0 and "--after-version 2 continues" in err
    code, out, _ = await eventfleet(
        "replay", "chat_room", "r1", "--at-version", "5", "--json", env=env
    )
    whole = json.loads(out)
    assert [e["version"] for e in whole["events"]] == [1, 2, 3, 4, 5] and not whole["more"]
    code, _, err = await eventfleet("replay", "chat_room", "r1", "--limit", "0", env=env)
    assert code == 2 and "must be at least 1" in err


async def test_erase_destroys_the_key_once_audits_it_and_names_every_failure(
    stack: EmbeddedStack, unique_name: str
) -> None:
    from workers.adapters.mongo import MongoStores

    stores = MongoStores(
        stack.urls.mongo_url, unique_name, timeout_ms=5000, master_key=TEST_MASTER_KEY
    )
    try:
        await stores.open()
        ann = await stores.keys.key_for("ann")
    finally:
        await stores.close()
    env = {"EVENTFLEET_MONGO_URL": stack.urls.mongo_url, "EVENTFLEET_MONGO_DATABASE": unique_name}
    code, out, err = await eventfleet("erase", "ann", "--operator", "dpo", env=env)  # no terminal
    assert code == 1 and "not confirmed" in err
    code, out, err = await eventfleet(
        "erase", "ann", "--operator", "dpo", "--yes", "--json", env=env
    )
    assert code == 0, err
    answer = json.loads(out)
    assert (answer["subject"], answer["by"], answer["keys_destroyed"]) == ("ann", "dpo", 1)
    code, out, err = await eventfleet("erase", "ann", "--operator", "eve", "--yes", env=env)
    assert code == 0 and "erased before" in out and "by dpo" in out
    code, _, err = await eventfleet("erase", "nobody", "--yes", env=env)
    assert code == 1 and "no personal data of subject 'nobody'" in err
    assert_one_line(err)
    code, _, err = await eventfleet("erase", "a\nb", "--yes", env=env)
    assert code == 2 and "must be 1 to 256 printable characters" in err
    stores = MongoStores(
        stack.urls.mongo_url, unique_name, timeout_ms=5000, master_key=TEST_MASTER_KEY
    )
    try:
        assert await stores.keys.find([ann.key_id]) == {}
        trail = await stores.actions.recent(limit=10)
        assert [(a.action, a.target, a.operator, a.via) for a in trail][-1] == (
            "erase", "ann", "dpo", "cli",
        )  # fmt: skip
    finally:
        await stores.close()


async def test_archive_says_what_would_move_then_moves_it_and_every_read_stays(
    stack: EmbeddedStack, unique_name: str
) -> None:
    from snapshot_rules.replay import replay
    from tests.chat_events import room_events
    from workers.adapters.mongo import MongoStores
    from workers.examples.domains.chat_room import CHAT_ROOM
    from workers.ports import Snapshot

    stores = MongoStores(
        stack.urls.mongo_url, unique_name, timeout_ms=5000, master_key=TEST_MASTER_KEY
    )
    try:
        await stores.open()
        written = room_events("r1", [("MessageSent", f"m{i}", "ann") for i in range(30)])
        await stores.events.append(written)
        folded = replay(CHAT_ROOM.reducer, written[:25]).state
        assert folded is not None
        taken = datetime.now(UTC)
        await stores.snapshots.save(Snapshot("chat_room", "r1", 25, folded, taken))
    finally:
        await stores.close()
    env = {"EVENTFLEET_MONGO_URL": stack.urls.mongo_url, "EVENTFLEET_MONGO_DATABASE": unique_name,
           "EVENTFLEET_DOMAINS": "tests.integration.bad_domains:retained_chat"}  # fmt: skip
    code, before, err = await eventfleet("replay", "chat_room", "r1", "--json", env=env)
    assert code == 0, err
    code, out, err = await eventfleet("archive", "--dry-run", "--json", env=env)
    assert code == 0, err
    [move] = json.loads(out)["moves"]
    assert (move["aggregate_id"], move["from_version"], move["through_version"]) == ("r1", 1, 20)
    code, out, err = await eventfleet("archive", "--batch", "7", env=env)
    assert code == 0 and "moved 20 events of 1 aggregates" in out, (out, err)
    code, after, err = await eventfleet("replay", "chat_room", "r1", "--json", env=env)
    assert code == 0 and json.loads(after) == json.loads(before)
    code, out, _ = await eventfleet("archive", "--dry-run", env=env)
    assert "would move 0 events" in out
    code, out, err = await eventfleet(
        "audit", "chat_room", "--skip-topics", "--skip-marks", env=env
    )
    # the auditor reads hot + archive as one history: all 30, contiguous; no view was built here
    assert "30 events" in out, out + err
    errors = [line for line in out.splitlines() if line.startswith("error")]
    assert [line.split()[1] for line in errors] == ["view_missing"], out
    stores = MongoStores(
        stack.urls.mongo_url, unique_name, timeout_ms=5000, master_key=TEST_MASTER_KEY
    )
    try:
        assert await stores.events.count(["chat_room"]) == 10
        assert await stores.archive.count(["chat_room"]) == 20
    finally:
        await stores.close()
    code, _, err = await eventfleet("archive", "--batch", "0", env=env)
    assert code == 2
