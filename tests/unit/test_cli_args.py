"""The command line's parser and the packages it names stay in step."""

from __future__ import annotations


def test_the_bench_paths_the_cli_offers_are_the_bench_packages() -> None:
    from workers.cli.args import BENCH_PATHS
    from workers.devtools.bench import PATHS

    assert BENCH_PATHS == PATHS
