"""The bench's table: every name whole, each judged row says whether its target is met."""

from __future__ import annotations

from dataclasses import replace

from workers.devtools.bench.append import scale_target
from workers.devtools.bench.measure import Measured, Table, Target


def measured(name: str, rate: float, cpu_ms: float, p99_ms: float = 1.0) -> Measured:
    count = 1000
    return Measured(name, count, count / rate, 0.5, p99_ms, cpu_ms * count / 1000)


def test_a_long_row_name_is_printed_whole() -> None:
    table = Table("t")
    long = "eventfleet commands, 64 conn, OrderPlaced (new), every guarantee on, uvloop"
    table.add(measured(long, 100, 1.0), measured("aiohttp coalesced baseline " * 3, 100, 1.0))
    text = table.render()
    assert long in text
    assert ("aiohttp coalesced baseline " * 3).rstrip() in text


def test_a_target_is_judged_on_the_median_ratios() -> None:
    table = Table("t")
    ours = [measured("ours", r, c) for r, c in ((80, 1.2), (90, 1.25), (70, 1.4))]
    theirs = [measured("base", 100, 1.0)] * 3
    table.add(ours, theirs, Target(rate_at_least=0.8, cpu_at_most=1.3))
    table.add(ours, theirs, Target(rate_at_least=0.85))
    table.add(ours, theirs, "(the store's own speed)")
    met, missed, note = table.as_dicts()
    assert met["target_met"] is True  # medians 0.8x rate, 1.25x CPU
    assert missed["target_met"] is False
    assert note["target_met"] is None
    lines = table.render().splitlines()
    assert lines[2].endswith("rate >= 0.8x, cpu <= 1.3x: met")
    assert lines[4].endswith("rate >= 0.85x: NOT met")
    assert lines[6].endswith("(the store's own speed)")


def test_a_target_without_a_measured_ratio_has_no_verdict() -> None:
    table = Table("t")
    table.add(measured("ours", 100, 1.0), None, Target(cpu_at_most=1.2))
    assert table.as_dicts()[0]["target_met"] is None
    assert table.render().splitlines()[-1].endswith("cpu <= 1.2x")


def test_the_paid_rows_place_a_tail_sized_to_the_servers_rate() -> None:
    from workers.devtools.bench.procs import paid_tail

    slow = {"count": 2_000, "duration_us": 1_000_000}  # 2,000/s
    fast = {"count": 30_000, "duration_us": 1_000_000}  # 30,000/s: ran past a fixed tail
    assert paid_tail(slow, 64) == 2_000 + 128
    assert paid_tail(fast, 64) == 30_000 + 128
    assert paid_tail({"count": 0, "duration_us": 0}, 1) == 2


def test_only_the_two_process_scale_row_is_judged() -> None:
    table = Table("scale")
    one = measured("1 appender process", 100, 1.0)
    for processes, cpu in ((2, 1.1), (4, 2.0)):
        table.add(measured(f"{processes} appender processes", 100, cpu), one,
                  scale_target(processes))  # fmt: skip
    two, four = table.as_dicts()
    assert two["target_met"] is True  # 1.1x CPU within 1.15x
    assert four["target_met"] is None  # shown, not judged: no NOT met for a 2-process target
    assert "NOT met" not in table.render() and "reference" in table.render()


def test_large_figures_never_run_into_their_neighbours() -> None:
    # A whole-path latency of seconds printed "3071.49ms5941.12ms" in a fixed-width column.
    table = Table("t")
    slow = Measured("ours: command path → sse", 1000, 0.2, 3071.49, 5941.12, 0.119)
    table.add(slow, measured("base", 35_676, 0.011), "(whole path)")
    lines = table.render().splitlines()
    header, ours = lines[1], lines[2]
    assert "3,071.49ms" not in ours and "3071.49ms  5941.12ms" in ours
    cells = ours.split("  ")
    assert "3071.49ms" in [c.strip() for c in cells] and "5941.12ms" in [c.strip() for c in cells]
    # every column lines up: each figure ends where its header does
    for title, figure in (("p50", "3071.49ms"), ("p99", "5941.12ms")):
        assert header.index(title) + len(title) == ours.index(figure) + len(figure)


def test_a_scale_row_says_how_long_its_join_took_to_share_the_partitions() -> None:
    from workers.devtools.bench.balance import Shared, is_shared

    assert is_shared([2, 2, 2, 2], 8) and is_shared([3, 3, 2], 8) and is_shared([1, 0], 1)
    assert not is_shared([4, 4, 0], 8)  # the idle member
    assert not is_shared([3, 3, 1], 8)  # a partition held by nobody (a rebalance under way)
    assert not is_shared([4, 2, 2], 8)  # one past its share
    joined = Shared(4.31, (2, 2, 2, 2))
    table = Table("scale")
    table.add(replace(measured("4 appender processes", 100, 1.0), note=str(joined)))
    assert "4 appender processes (join → shared 4.3 s, partitions 2/2/2/2)" in table.render()
    assert table.as_dicts()[0]["note"] == "join → shared 4.3 s, partitions 2/2/2/2"
