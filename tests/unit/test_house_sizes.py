"""The sizes issue 48 brought ``workers/`` under stay there: no module over 500 lines, no
function over 80, no constructor over 8 parameters, as ``tests/bench/house.py`` counts them.

Adding to a module at its limit is where they grow back unnoticed (the bench only prints them):
split the module, or give part of a long function a name of its own.
"""

from __future__ import annotations

import functools
from pathlib import Path

from tests.bench.house import FUNCTION_MAX, MODULE_MAX, PARAMS_MAX, Figures, measure, package_of

ROOT = Path(__file__).resolve().parents[2]


@functools.cache
def figures() -> Figures:
    """Measured once, when a test asks (not at collection, in every worker)."""
    return measure(ROOT)


def test_no_module_is_over_500_lines() -> None:
    assert MODULE_MAX == 500
    assert figures().modules > 300  # every module of workers/ was read
    assert figures().modules_over == []


def test_no_function_is_over_80_lines() -> None:
    assert FUNCTION_MAX == 80
    assert figures().functions_over == []


def test_no_constructor_takes_over_8_parameters() -> None:
    assert PARAMS_MAX == 8
    assert figures().constructors_over == []


def test_the_counts_catch_what_they_look_for(tmp_path: Path) -> None:
    """Each check fails where it should: a planted module, function and constructor."""
    body = "\n".join(f"    x{i} = {i}" for i in range(FUNCTION_MAX))
    params = ", ".join(f"p{i}: int" for i in range(PARAMS_MAX + 1))
    planted = (
        f"def long() -> None:\n{body}\n\n\n"
        f"class Wide:\n    def __init__(self, {params}) -> None:\n        pass\n"
    )
    (tmp_path / "workers").mkdir()
    (tmp_path / "tests" / "unit").mkdir(parents=True)  # the internals' list, which it reads too
    (tmp_path / "tests" / "unit" / "test_private_apis.py").write_text("USES = []\n")
    (tmp_path / "workers" / "planted.py").write_text(planted + "\n" * MODULE_MAX)
    found = measure(tmp_path)
    assert found.modules_over == [f"workers/planted.py ({planted.count(chr(10)) + MODULE_MAX})"]
    assert found.functions_over == [f"workers/planted.py:long ({FUNCTION_MAX + 1})"]
    assert found.constructors_over == [f"workers/planted.py:{FUNCTION_MAX + 5} ({PARAMS_MAX + 1})"]


def test_the_packages_hold_the_rest_once_each() -> None:
    """``--packages`` splits what the issue's target counts, every line in one package."""
    assert package_of("workers/metrics.py") == "workers/metrics.py"
    assert package_of("workers/runtime/compose.py") == "workers/runtime"
    assert package_of("workers/http/edge/server.py") == "workers/http/edge"
    assert package_of("workers/http/console/a/b.py") == "workers/http/console"
    counted = figures()
    rest = counted.code_lines - sum(counted.later_lines.values())
    assert sum(counted.packages.values()) == rest
    assert counted.packages["workers/http/edge"] > 0
