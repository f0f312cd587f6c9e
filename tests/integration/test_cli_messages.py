"""Every CLI message in one form, usage mistakes exit 2 with the near name, services named."""

from __future__ import annotations

import pytest

from tests.cli import assert_one_line, eventfleet
from tests.keys import master_key_env
from workers.cli.entry import main
from workers.devtools.embedded import free_port


@pytest.mark.parametrize(
    ("args", "suggestion"),
    [
        (("replya", "order", "o-1"), "did you mean 'replay'?"),
        (("worker", "--role", "apender"), "did you mean 'appender'?"),
        (("topics", "chek"), "did you mean 'check'?"),
    ],
)
def test_a_near_name_on_the_command_line_is_suggested(
    args: tuple[str, ...], suggestion: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(list(args))
    err = capsys.readouterr().err
    assert exited.value.code == 2
    assert_one_line(err)
    assert suggestion in err


async def test_an_unknown_aggregate_type_is_a_usage_mistake_with_the_near_name() -> None:
    # No service is reached: the type is checked against the domains first.
    code, out, err = await eventfleet("replay", "ordr", "o-1")
    assert (code, out) == (2, "")
    assert_one_line(err)
    assert "'ordr' (did you mean 'order'?)" in err and "enabled: account, chat_room, order" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("erase", "a\tb", "--operator", "ops", "--yes"), "1 to 256 printable characters"),
        (("erase", "x" * 257, "--operator", "ops", "--yes"), "1 to 256 printable characters"),
        (("erase", "o-1", "--operator", "x" * 257, "--yes"), "1 to 256 printable characters"),
        (("erase", "o-1", "--operator", "ops\nerased by root", "--yes"), "printable characters"),
        (("archive", "--batch", "0"), "--batch must be 1 or more, got 0"),
    ],
)
async def test_a_bad_value_of_erase_or_archive_is_a_usage_mistake_before_any_service(
    args: tuple[str, ...], message: str
) -> None:
    # The store's URL names a closed port: were it reached, the answer would be 1, not 2.
    env = {"EVENTFLEET_MONGO_URL": f"mongodb://127.0.0.1:{free_port()}/"}
    code, out, err = await eventfleet(*args, env=env)
    assert (code, out) == (2, ""), err
    assert_one_line(err)
    assert err.startswith("eventfleet: error: ") and message in err


async def test_a_far_name_gets_no_suggestion() -> None:
    code, _, err = await eventfleet("replay", "zzzzzz", "o-1")
    assert code == 2 and "did you mean" not in err
    assert_one_line(err)


async def test_an_unknown_projection_is_a_usage_mistake_with_the_near_name() -> None:
    code, _, err = await eventfleet(
        "projections", "rebuild", "chat_mesages",
        env={"EVENTFLEET_MONGO_URL": f"mongodb://127.0.0.1:{free_port()}/"},
    )  # fmt: skip
    assert code == 2, err
    assert_one_line(err)
    assert "did you mean 'chat_messages'?" in err


async def test_an_unreachable_store_names_its_masked_url_and_the_setting() -> None:
    url = f"mongodb://ops:s3cret-pw@127.0.0.1:{free_port()}/?directConnection=true"
    code, _, err = await eventfleet(
        "replay", "order", "o-1",
        env={"EVENTFLEET_MONGO_URL": url, "EVENTFLEET_MONGO_TIMEOUT_MS": "300"},
    )  # fmt: skip
    assert code == 1
    assert_one_line(err)
    assert "s3cret-pw" not in err and "mongodb://ops:***@127.0.0.1:" in err
    assert "EVENTFLEET_MONGO_URL" in err
    assert "ServerSelectionTimeoutError" not in err  # the driver's detail: only at debug


async def test_a_served_role_logs_the_drivers_detail_only_at_debug() -> None:
    url = f"mongodb://127.0.0.1:{free_port()}/?directConnection=true"
    env = {
        "EVENTFLEET_MONGO_URL": url,
        "EVENTFLEET_MONGO_TIMEOUT_MS": "300",
        "EVENTFLEET_KAFKA_URL": f"kafka://127.0.0.1:{free_port()}",
        "EVENTFLEET_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
        "EVENTFLEET_HTTP_PORT": "0",
        "EVENTFLEET_AUTH": "none",
        **master_key_env(),
    }
    code, _, err = await eventfleet("worker", "--role", "appender", env=env)
    assert code == 1
    assert "ServerSelectionTimeoutError" not in err, err
    assert err.strip().splitlines()[-1].startswith("eventfleet: error: MongoDB did not answer")
    code, _, err = await eventfleet(
        "worker", "--role", "appender", env={**env, "EVENTFLEET_LOG_LEVEL": "debug"}
    )
    assert code == 1 and "ServerSelectionTimeoutError" in err
