"""The bench says what it measured and what it assumed, and checks its plot's path first."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from topics.errors import ConfigError
from workers.cli.entry import explain
from workers.devtools.bench.capacity import Costs, assumed, measured, render
from workers.devtools.bench.plot import plot_target


def test_a_cost_this_run_did_not_measure_is_said_to_be_assumed() -> None:
    scale_alone = measured(Costs(), appender_cpu_ms=0.41)  # `bench scale`: no command rows
    text = render(scale_alone)
    assert "commands 0.330 ms assumed, appender 0.410 ms," in text
    assert "assumed, not measured in this run: commands 0.330 ms" in text
    assert "`eventfleet bench commands` or `all` measures it" in text
    assert assumed(scale_alone) == ["commands_cpu_ms"]
    everything = measured(Costs(), appender_cpu_ms=0.41, commands_cpu_ms=0.2)
    assert assumed(everything) == []
    assert "assumed," not in render(everything) and "commands 0.200 ms," in render(everything)


def test_a_relative_plot_path_is_resolved_where_the_command_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "out").mkdir()
    assert plot_target("out/scale.svg") == tmp_path / "out" / "scale.svg"
    assert plot_target("scale.svg").is_absolute()


@pytest.mark.parametrize(
    ("given", "said"),
    [
        ("missing/scale.svg", "the folder {tmp}/missing does not exist"),
        (".", "is a folder; name the SVG file to write"),
    ],
)
def test_a_plot_path_that_cannot_be_written_is_refused_at_once(
    given: str, said: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as refused:
        plot_target(given)
    assert str(refused.value).startswith(f"--plot {given}: ")
    assert said.format(tmp=tmp_path) in str(refused.value)


def test_a_file_error_names_the_file_not_the_services() -> None:
    error = FileNotFoundError(2, "No such file or directory", "/nowhere/scale.svg")
    said = explain(error, argparse.Namespace(command="bench"))
    assert said.startswith("/nowhere/scale.svg: No such file or directory")
    assert "services" not in said
    refused = explain(ConnectionRefusedError(111, "Connection refused"), argparse.Namespace(
        command="bench"))  # fmt: skip
    assert "check that the services EVENTFLEET_* name are up" in refused
