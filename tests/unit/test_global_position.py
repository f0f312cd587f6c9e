"""The global read's positions: opaque, bound to one fleet's log, never misread. A position round
trips; one altered in any byte, cut short, made by another fleet (another key or topic), of
another format or not base64url at all is refused with a sentence saying which; one counting
another number of partitions is outdated."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from topics.errors import InvalidInput, PositionOutdated
from workers.roles.read.position import MAX_CHARS, MAX_OFFSET, Positions

KEY = b"k" * 32
OURS = Positions(KEY, "fleet.events.stored")


def raw(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def text(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@given(st.lists(st.integers(0, MAX_OFFSET), min_size=1, max_size=64))
def test_a_position_round_trips_and_is_opaque_base64url(offsets: list[int]) -> None:
    made = OURS.encode(dict(enumerate(offsets)), len(offsets))
    assert made.isascii() and "=" not in made and "," not in made and ":" not in made
    assert OURS.decode(made) == dict(enumerate(offsets))
    assert OURS.decode(made, partitions=len(offsets)) == dict(enumerate(offsets))


def test_partitions_not_named_are_at_zero() -> None:
    assert OURS.decode(OURS.encode({2: 9}, 4)) == {0: 0, 1: 0, 2: 9, 3: 0}


@given(st.data())
def test_any_byte_altered_is_refused(data: st.DataObject) -> None:
    made = raw(OURS.encode({0: 15, 1: 7, 2: 1 << 40, 3: 0}, 4))
    at = data.draw(st.integers(0, len(made) - 1))
    flip = data.draw(st.integers(1, 255))
    altered = text(made[:at] + bytes([made[at] ^ flip]) + made[at + 1 :])
    with pytest.raises(InvalidInput, match=r"position .*(altered|another fleet|format)"):
        OURS.decode(altered)


@given(st.integers(1, 30))
def test_a_position_cut_short_is_refused(cut: int) -> None:
    made = OURS.encode({0: 15, 1: 7, 2: 99999, 3: 3}, 4)
    with pytest.raises(InvalidInput, match=r"cut short|not base64url"):
        OURS.decode(made[:-cut])


def test_a_position_of_another_fleet_or_topic_says_so() -> None:
    theirs = Positions(b"t" * 32, "fleet.events.stored").encode({0: 1}, 1)
    other_topic = Positions(KEY, "other.events.stored").encode({0: 1}, 1)
    for foreign in (theirs, other_topic):
        with pytest.raises(InvalidInput, match="was made by another fleet"):
            OURS.decode(foreign)


def test_a_position_counting_other_partitions_is_outdated_not_misread() -> None:
    made = OURS.encode({0: 5, 1: 6, 2: 7}, 3)
    with pytest.raises(PositionOutdated, match="had 3 partitions; it has 4 now"):
        OURS.decode(made, partitions=4)


@pytest.mark.parametrize(
    ("given_text", "why"),
    [("0:15,1:7", "is not one"), ("abc def", "is not one"), ("a" * (MAX_CHARS + 1), "is not one"),
     ("A", "not base64url|cut short"), ("AAAA", "cut short"), ("é", "is not one"),
     ("\x00", "is not one")],
)  # fmt: skip
def test_text_that_is_no_position_is_refused_naming_the_fix(given_text: str, why: str) -> None:
    with pytest.raises(InvalidInput, match=why) as refused:
        OURS.decode(given_text)
    assert "exactly as the fleet gave it" in str(refused.value)
    assert len(str(refused.value)) < 300  # a long input is cut in the message


def test_a_position_of_another_format_is_refused() -> None:
    made = bytearray(raw(OURS.encode({0: 1}, 1)))
    made[0] = 2
    with pytest.raises(InvalidInput, match="format 2"):
        OURS.decode(text(bytes(made)))


def test_offsets_outside_what_a_log_has_are_never_encoded() -> None:
    with pytest.raises(ValueError, match="an offset is 0 to"):
        OURS.encode({0: -1}, 1)
    with pytest.raises(ValueError, match="at least 16 bytes"):
        Positions(b"short", "t")
