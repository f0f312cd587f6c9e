"""Enabling process managers: EVENTFLEET_PROCESSES is imported and checked before anything
connects, every mistake one sentence naming the variable and the fix; --role pm with none is a
usage error; --role all includes the pm role only when some are enabled."""

from __future__ import annotations

import pytest

from topics.errors import ConfigError
from workers.cli.entry import main
from workers.examples.domains import chat_domains, default_domains
from workers.runtime.compose import ROLES, all_roles
from workers.runtime.loading import load_processes
from workers.runtime.processes import PM_ROLE
from workers.runtime.settings import Settings


def test_an_unset_variable_enables_none_and_a_good_one_is_checked() -> None:
    assert len(load_processes("", default_domains())) == 0
    found = load_processes("workers.examples.domains:default_processes", default_domains())
    assert found.names() == ["order_lifecycle"]


@pytest.mark.parametrize(
    ("spec", "named"),
    [
        ("no.such.module:x", "cannot be imported"),
        ("workers.examples.domains:nothing", "cannot be imported"),
        ("workers.examples.domains:default_domains", "gave Domains, not Processes"),
        ("workers.examples.domains:ORDER", "gave Domain, not Processes"),
    ],
)
def test_a_bad_variable_is_one_sentence_naming_it(spec: str, named: str) -> None:
    with pytest.raises(ConfigError, match=f"EVENTFLEET_PROCESSES={spec!r}.*{named}"):
        load_processes(spec, default_domains())


def test_processes_naming_a_domain_not_enabled_are_refused_at_start() -> None:
    with pytest.raises(ConfigError, match=r"'shipment'.*which no enabled domain is"):
        load_processes("workers.examples.domains:default_processes", chat_domains())


def test_a_setting_without_a_colon_is_refused_by_the_settings() -> None:
    with pytest.raises(ConfigError, match="EVENTFLEET_PROCESSES"):
        Settings.from_env({"EVENTFLEET_PROCESSES": "no-colon"})
    with pytest.raises(ConfigError, match="EVENTFLEET_PROCESS_POLL_MS"):
        Settings.from_env({"EVENTFLEET_PROCESS_POLL_MS": "5"})


def test_all_roles_include_pm_only_with_processes() -> None:
    assert all_roles(Settings()) == ROLES
    managed = Settings(processes="workers.examples.domains:default_processes")
    assert all_roles(managed) == (*ROLES, PM_ROLE)


def test_a_pm_worker_without_processes_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("EVENTFLEET_DOMAINS", "workers.examples.domains:default_domains")
    monkeypatch.delenv("EVENTFLEET_PROCESSES", raising=False)
    assert main(["worker", "--role", "pm"]) == 2
    assert "EVENTFLEET_PROCESSES names no process manager" in capsys.readouterr().err
    monkeypatch.setenv("EVENTFLEET_PROCESSES", "workers.examples.domains:nothing")
    assert main(["worker", "--role", "pm"]) == 2
    assert "EVENTFLEET_PROCESSES='workers.examples.domains:nothing'" in capsys.readouterr().err
