"""free_port: a port no outgoing connection can take before the server binds it."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from workers.devtools.embedded import probes
from workers.devtools.embedded.common import HOST
from workers.devtools.embedded.probes import free_port


def _bind(port: int) -> socket.socket:
    sock = socket.socket()
    sock.bind((HOST, port))
    return sock


def test_a_free_port_is_below_the_ephemeral_range_and_bindable() -> None:
    floor = probes._ephemeral_floor()
    for _ in range(50):
        port = free_port()
        assert 10_000 <= port < floor
        _bind(port).close()


def test_with_also_every_offset_port_is_free_and_below_the_range() -> None:
    floor = probes._ephemeral_floor()
    for _ in range(20):
        port = free_port(also=(10_000,))
        assert port + 10_000 < floor
        _bind(port).close()
        _bind(port + 10_000).close()


def test_a_port_someone_holds_is_never_handed_out(monkeypatch: pytest.MonkeyPatch) -> None:
    """The held port comes up as the candidate five times: another one is handed out."""
    held = _bind(0)
    try:
        port = held.getsockname()[1]
        choose = probes.random.randrange
        tried: list[int] = []

        def candidate(low: int, high: int) -> int:
            tried.append(port if len(tried) < 5 else choose(low, high))
            return tried[-1]

        monkeypatch.setattr(probes.random, "randrange", candidate)
        monkeypatch.setattr(probes, "_ephemeral_floor", lambda: 60_000)
        monkeypatch.delenv(probes.PORT_SHARE, raising=False)  # the held port is in every share
        given = free_port()
        assert given != port and tried[:5] == [port] * 5 and len(tried) >= 6
        _bind(given).close()
    finally:
        held.close()


def test_without_room_below_the_range_the_kernel_picks(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    ranges = tmp_path / "ip_local_port_range"
    ranges.write_text("1024\t65535\n")
    monkeypatch.setattr(probes, "_EPHEMERAL", ranges)
    port = free_port()
    assert 1024 <= port <= 65535
    _bind(port).close()


def test_an_unreadable_range_falls_back_to_the_iana_default(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(probes, "_EPHEMERAL", tmp_path / "missing")
    assert probes._ephemeral_floor() == 49_152
    assert free_port() < 49_152


def test_a_share_hands_out_only_its_own_ports_and_none_twice(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What parallel test workers rely on: disjoint shares, and no port handed out twice by
    one process before its server could bind it."""
    monkeypatch.setenv(probes.PORT_SHARE, "2/4")
    monkeypatch.setattr(probes, "_handed", set())
    ports = [free_port() for _ in range(300)]
    assert all(port % 4 == 2 for port in ports)
    assert len(set(ports)) == len(ports)


@pytest.mark.parametrize("share", ["4/4", "-1/4", "1", "a/b", "1/0"])
def test_a_malformed_share_is_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, share: str
) -> None:
    monkeypatch.setenv(probes.PORT_SHARE, share)
    with pytest.raises(ValueError, match="EVENTFLEET_PORT_SHARE"):
        free_port()
