"""The console's layout: an icon of its own (no /favicon.ico asked and refused), and prose from
the contract shown with its code spans as code, escaped."""

from __future__ import annotations

from workers.http.console.html import page, prose


def test_every_page_names_an_empty_icon_so_no_browser_asks_for_favicon_ico() -> None:
    for actions in (True, False):
        shown = page("Sign in", "<p>x</p>", actions=actions)
        head = shown.split("</head>", 1)[0]
        assert '<link rel="icon" href="data:,">' in head
    assert "(actions enabled)" in page("t", "", actions=True)
    assert "(read-only)" in page("t", "", actions=False)


def test_code_spans_become_code_and_everything_stays_escaped() -> None:
    assert prose("set `EVENTFLEET_AUTH` and `x`") == (
        "set <code>EVENTFLEET_AUTH</code> and <code>x</code>"
    )
    assert prose("`<script>` & <b>") == "<code>&lt;script&gt;</code> &amp; &lt;b&gt;"
    assert prose("one ` alone") == "one ` alone"  # nothing to pair: left as typed
    assert prose("") == ""
