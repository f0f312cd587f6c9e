"""dev's banner and export block, built from the enabled domains, and the demo's exact plan."""

from __future__ import annotations

import os
import random
import shlex
from pathlib import Path

import orjson

from snapshot_rules.domain import Domains
from tests.e2e.counting import domains as tally_domains
from workers.devtools.banner import banner, example, exports, tries
from workers.devtools.dev_identity import DevIdentity
from workers.examples.demo.run import chat_plan, order_plan
from workers.examples.domains import all_domains, default_domains
from workers.runtime.door.auth import make_authenticator
from workers.runtime.door.identity import Credentials
from workers.runtime.settings import Settings
from workers.secrets import read_secrets


def test_the_export_block_survives_the_shell() -> None:
    settings = Settings.from_env({
        "EVENTFLEET_MONGO_URL": "mongodb://127.0.0.1:4/?directConnection=true&w=1",
        "EVENTFLEET_KAFKA_IDEMPOTENCE": "false",
    })  # fmt: skip
    parsed = dict(shlex.split(line)[1].split("=", 1) for line in exports(settings))
    assert parsed["EVENTFLEET_MONGO_URL"] == "mongodb://127.0.0.1:4/?directConnection=true&w=1"
    assert parsed["EVENTFLEET_KAFKA_IDEMPOTENCE"] == "false"
    assert Settings.from_env(parsed).mongo_url == settings.mongo_url  # valid as given


def test_the_export_block_never_shows_a_password() -> None:
    settings = Settings.from_env({"EVENTFLEET_REDIS_URL": "redis://:s3cret@127.0.0.1:6379/0"})
    assert "s3cret" not in "\n".join(exports(settings))


def test_every_curl_line_sends_data_its_schema_accepts() -> None:
    for domain in all_domains():
        for line in tries("http://h:1", Domains([domain])):
            if "-d '" not in line:
                continue
            assert "-H 'Content-Type: application/json'" in line, line  # else 415
            body = orjson.loads(line.split("-d '", 1)[1].rstrip("'"))
            spec = domain.events[body["type"]]
            assert spec.schema.check(body["data"], "data") is None, (domain.name, body)


def test_every_curl_line_prints_its_status_and_the_block_names_the_api() -> None:
    for domain in all_domains():
        lines = tries("http://h:1", Domains([domain]))
        assert all(line.startswith("curl -s -w ' %{http_code}\\n' ") for line in lines), lines
    settings = Settings.from_env({"EVENTFLEET_HTTP_PORT": "8123"})
    parsed = dict(shlex.split(line)[1].split("=", 1) for line in exports(settings, "t"))
    assert parsed["EVENTFLEET_API"] == "http://127.0.0.1:8123"  # the port dev chose, not 8080
    assert parsed["EVENTFLEET_TOKEN"] == "t"


def test_example_values_pass_their_schemas() -> None:
    for domain in all_domains():
        for name, spec in domain.events.items():
            assert spec.schema.check(example(spec.schema), "data") is None, (domain.name, name)


def test_the_banner_lists_only_the_enabled_domains() -> None:
    settings = Settings.from_env({})
    custom = banner(settings, tally_domains(), ("kafka",))
    assert "domains   tally" in custom and "/v1/tally/tally-1/events" in custom
    assert "order" not in custom and "eventfleet.orders" not in custom
    default = banner(settings, default_domains(), ())
    assert "/v1/order/o-1/events" in default and "eventfleet.orders" in default


def test_the_demo_plans_are_fixed_by_the_seed_and_only_edit_what_was_sent() -> None:
    assert order_plan(random.Random(3)) == order_plan(random.Random(3))
    plan = chat_plan("r", random.Random(5))
    sent: set[str] = set()
    deleted: set[str] = set()
    for event_type, data in plan:
        if event_type == "MessageSent":
            sent.add(data["message_id"])
        else:
            assert data["message_id"] in sent - deleted, (event_type, data)
            if event_type == "MessageDeleted":
                deleted.add(data["message_id"])


def test_the_export_block_carries_devs_python_path_as_absolute_paths(tmp_path: Path) -> None:
    settings = Settings.from_env({})
    lines = exports(settings, python_path=f".{os.pathsep}{tmp_path}")
    name, value = shlex.split(lines[0])[1].split("=", 1)
    assert name == "PYTHONPATH"
    assert value.split(os.pathsep) == [os.getcwd(), str(tmp_path)]
    assert not any(line.startswith("export PYTHONPATH") for line in exports(settings))


def test_the_banner_names_the_console() -> None:
    settings = Settings.from_env({"EVENTFLEET_HTTP_PORT": "8080"})
    shown = banner(settings, default_domains(), ())
    assert "console   http://127.0.0.1:8080/console" in shown


def test_dev_turns_the_consoles_actions_on_unless_told_read_only() -> None:
    from workers.devtools.dev import dev_settings

    plain = Settings.from_env({})
    assert plain.console_actions is False  # a worker stays read-only unless told
    on = dev_settings(plain, port=8080)
    assert on.console_actions is True
    assert "operator actions on" in banner(on, default_domains(), ())
    off = dev_settings(plain, port=8080, read_only=True)
    assert off.console_actions is False
    assert "read-only" in banner(off, default_domains(), ())
    told = Settings.from_env({"EVENTFLEET_CONSOLE_ACTIONS": "false"})
    assert dev_settings(told, port=8080).console_actions is False  # the environment wins
    # --read-only wins over an environment that turned them on
    told_on = Settings.from_env({"EVENTFLEET_CONSOLE_ACTIONS": "true"})
    assert dev_settings(told_on, port=8080, read_only=True).console_actions is False


def test_the_banner_names_the_chat_page_when_the_chat_room_is_enabled() -> None:
    jwt = Settings.from_env({"EVENTFLEET_AUTH": "jwt"})
    shown = banner(jwt, all_domains(), ())
    assert "chat      http://127.0.0.1:8080/chat/lobby" in shown.replace("0.0.0.0", "127.0.0.1")
    assert "console sign-in page" in shown
    for line in shown.splitlines():  # a shell reads every line of it (the export block's way)
        shlex.split(line)
    assert "/chat/" not in banner(jwt, tally_domains(), ())
    assert "type a name" in banner(
        Settings.from_env({"EVENTFLEET_AUTH": "none"}), all_domains(), ()
    )


async def test_dev_prints_tokens_of_alice_bob_and_ops_that_its_door_verifies(
    tmp_path: Path,
) -> None:
    """Each token names its user and its roles, verified as a worker started from the export
    block verifies it; ``EVENTFLEET_TOKEN`` stays, and is the operator's."""
    identity = DevIdentity(tmp_path, Settings.from_env({}))
    settings = identity.settings(Settings.from_env({}))
    users = identity.users()
    assert [u.user.name for u in users] == ["alice", "bob", "ops"]
    shown = banner(settings, default_domains(), (), users[-1].token, users)
    exported = dict(shlex.split(line)[1].split("=", 1) for line in exports(
        settings, users[-1].token, users=users))  # fmt: skip
    env = {k: v for k, v in exported.items() if not k.startswith("EVENTFLEET_TOKEN")}
    door = await make_authenticator(Settings.from_env(env), read_secrets(settings, env),
                                    required=True)  # fmt: skip
    viewer, operator = settings.auth_viewer_role, settings.auth_operator_role
    expected = {"alice": (viewer,), "bob": (), "ops": (viewer, operator, "moderator")}
    for signed in users:
        user = signed.user
        token = exported[f"EVENTFLEET_TOKEN_{user.name.upper()}"]
        actor = await door.authenticate(Credentials(authorization=(f"Bearer {token}",)))
        assert actor.principal == user.name and sorted(actor.roles) == sorted(expected[user.name])
        assert user.roles == expected[user.name]
        line = next(line for line in shown.splitlines() if f" {user.name} " in line)
        assert f"${user.env}" in line and (", ".join(user.roles) or "no roles") in line
    assert exported["EVENTFLEET_TOKEN"] == exported["EVENTFLEET_TOKEN_OPS"]
    assert "$EVENTFLEET_TOKEN is the one of ops" in shown
    for line in shown.splitlines():  # a shell reads every line, the users' too
        shlex.split(line)
