"""The in-memory snapshot-rule state: a bounded dictionary, as one process would keep it alone."""

from __future__ import annotations

from collections import Counter, OrderedDict

from workers.ports import AggregateRef, RuleState, RuleStates


class MemoryRuleStates:
    """Rule states by aggregate, the least recently used forgotten beyond ``max_entries``."""

    def __init__(self, *, max_entries: int = 100_000) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries}")
        self._max = max_entries
        self._states: OrderedDict[AggregateRef, RuleState] = OrderedDict()
        self.calls: Counter[str] = Counter()

    def get(self, aggregate: AggregateRef) -> RuleState | None:
        self.calls["get"] += 1
        found = self._states.get(aggregate)
        if found is not None:
            self._states.move_to_end(aggregate)
        return found

    def put(self, aggregate: AggregateRef, state: RuleState) -> None:
        self.calls["put"] += 1
        self._states[aggregate] = state
        self._states.move_to_end(aggregate)
        while len(self._states) > self._max:
            self._states.popitem(last=False)

    def __len__(self) -> int:
        return len(self._states)


def _implements(states: MemoryRuleStates) -> RuleStates:
    """Never called: mypy checks here that the class keeps the port's signatures."""
    return states
