"""The chat page's HTML: the sender is the principal (a name field only when the door is open),
the room id escaped, its own script and stylesheet linked, nothing inline."""

from __future__ import annotations

import re

from workers.http.live.chat_assets import SCRIPT, STYLE
from workers.http.live.chat_page import PAGE_POLICY, SCRIPT_PATH, STYLESHEET_PATH, chat_page


def test_under_jwt_there_is_no_name_to_type() -> None:
    page = chat_page("lobby", auth="jwt")
    assert 'id="me"' not in page and 'data-auth="jwt"' in page
    assert 'href="/console/login?next=/chat/lobby"' in page  # the console's sign-in, and back


def test_with_the_door_open_a_name_is_typed_and_said_to_be_unchecked() -> None:
    page = chat_page("lobby", auth="none")
    assert 'id="me"' in page and "names are not checked" in page


def test_nothing_inline_and_the_room_escaped() -> None:
    page = chat_page('a"><script>x</script>', auth="jwt")
    assert "<script>x" not in page
    assert re.findall(r"<script[^>]*>", page) == [f'<script src="{SCRIPT_PATH}" defer>']
    assert f'<link rel="stylesheet" href="{STYLESHEET_PATH}">' in page
    assert "style=" not in page and "<style" not in page  # no inline style
    assert re.search(r"\son[a-z]+=", page) is None  # no inline handler
    assert "style-src 'self'" in PAGE_POLICY and "unsafe-inline" not in PAGE_POLICY


def test_the_script_asks_for_tickets_and_sends_no_sender_under_jwt() -> None:
    assert "/console/tickets" in SCRIPT and "&ticket=" in SCRIPT
    assert "credentials: 'same-origin'" in SCRIPT
    assert "if (open) data[field] = me;" in SCRIPT  # only with the door open
    assert ".style." not in SCRIPT and "innerHTML" not in SCRIPT  # text only, classes only
    assert "position" not in SCRIPT.split("function render")[1].split("function apply")[0]
    assert "font-family" in STYLE
