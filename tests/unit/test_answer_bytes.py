"""``answer_bytes``: the same status and JSON as ``answer_of`` for every outcome, the common
202 written out directly included."""

from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st

from workers.roles.outcomes import Accepted, NotDone, Outcome, Refused, Stored, Unknown
from workers.runtime.answers import answer_bytes, answer_of

ids = st.text(max_size=40)  # quotes and control characters too: the bytes stay JSON
numbers = st.integers(min_value=0, max_value=2**63 - 1)
optional = st.none() | numbers
outcomes = st.one_of(
    st.builds(Accepted, ids, optional, optional, optional, st.booleans()),
    st.builds(Stored, ids, numbers, st.booleans(), st.booleans()),
    st.builds(Refused, st.sampled_from(["conflict", "forbidden", "invalid_data"]), ids),
    st.builds(Unknown, ids, st.none() | ids, ids),
    st.builds(NotDone, st.just("store_unavailable"), ids),
)


@given(outcomes)
def test_the_bytes_are_the_answer_of_every_outcome(outcome: Outcome) -> None:
    status, raw = answer_bytes(outcome)
    answer = answer_of(outcome)
    assert status == answer.status
    assert orjson.loads(raw) == answer.body


def test_a_first_accepted_event_is_written_out_in_the_order_clients_saw() -> None:
    status, raw = answer_bytes(Accepted("e-1", 3, 12))
    assert (status, raw) == (202, b'{"event_id":"e-1","partition":3,"offset":12}')
