"""The chat page: ``GET /chat/{room_id}``, its script and its stylesheet, under every door.

The page carries no data, so it is served to anyone (``/chat/`` is an open prefix of the door);
everything it shows comes over the chat socket, ``/v1/rooms/{room_id}/ws``, opened with a ticket
(``workers.http.tickets``) that the script asks for with a same-origin ``POST
/console/tickets``: the console's session cookie signs it in, so a browser signed in to the
console chats as that principal, and one that is not is offered the console's sign-in, which
brings it back. The sender is the ticket's principal (no name field, unless the door is open:
``EVENTFLEET_AUTH=none`` has no principals). The script renders every room event as it is
stored (names, times, "edited", who has read what), sends messages, edits, deletes and read
receipts as commands, says so when the fleet refuses one, and keeps what it rendered with its
position in ``sessionStorage``: a reload, a dropped socket or an expired ticket reconnects with
a new ticket from that position, so nothing is lost or shown twice. No inline script or style
(the page's Content-Security-Policy).
"""

from __future__ import annotations

import html

from topics.envelope import AGGREGATE_ID_RE
from workers.http.declared import CHAT_PAGE
from workers.http.edge.request import Request
from workers.http.edge.responses import Response, json_response
from workers.http.edge.routes import Api
from workers.http.live.chat_assets import SCRIPT, STYLE
from workers.runtime.answers import error
from workers.runtime.fleet import Fleet

SCRIPT_PATH = "/chat/static/chat.js"
STYLESHEET_PATH = "/chat/static/chat.css"
PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; "
    "img-src 'self' data:; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
)
"""The console's policy, plus this page's own script and its socket (same origin only)."""


def chat_page(room_id: str, *, auth: str) -> str:
    """The page of ``room_id`` for a door in mode ``auth`` (``none``: a name field)."""
    room = html.escape(room_id, quote=True)
    sign_in = f"/console/login?next=/chat/{room}"
    name = (
        '<p class="open-door">EVENTFLEET_AUTH=none: the door is open, so names are not '
        'checked.</p><label class="name">Your name <input id="me" autocomplete="off" '
        'maxlength="128"></label>'
        if auth == "none"
        else ""
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>#{room} · eventfleet chat</title>"
        '<link rel="icon" href="data:,">'
        f'<link rel="stylesheet" href="{STYLESHEET_PATH}">'
        f'<script src="{SCRIPT_PATH}" defer></script></head>'
        f'<body data-room="{room}" data-auth="{html.escape(auth, quote=True)}">'
        f'<header><h1>#{room}</h1><span id="who"></span><span id="status">connecting</span>'
        "</header><main>"
        '<section id="signin" hidden><p><span id="signin-why">Sign in to chat: </span>'
        f'<a id="sign-in" href="{sign_in}">'
        "sign in</a> with your token (the console's sign-in); it brings you back here.</p>"
        "</section>"
        '<div id="chat" hidden>'
        f"{name}"
        '<p id="notice" class="notice" role="alert" hidden></p>'
        '<ol id="messages"></ol><p id="empty" class="muted">No messages yet: say hello.</p>'
        '<form id="send"><div id="editing" hidden>Editing <span id="editing-what"></span> · '
        '<button type="button" id="cancel">Cancel</button></div>'
        '<input id="text" autocomplete="off" maxlength="4000" placeholder="Write a message">'
        '<button type="submit" id="submit">Send</button></form>'
        '<section class="receipts"><h2>Read receipts</h2><ul id="reads"></ul></section>'
        "</div></main></body></html>"
    )


def register_chat_page(fleet: Fleet, api: Api) -> None:
    """Serve the chat page next to the chat socket (a process with the commands role)."""
    script = SCRIPT.encode()
    style = STYLE.encode()
    assets = {"Cache-Control": "max-age=300"}

    async def chat_script(request: Request) -> Response:
        return Response(script, content_type="text/javascript; charset=utf-8", headers=assets)

    async def chat_stylesheet(request: Request) -> Response:
        return Response(style, content_type="text/css; charset=utf-8", headers=assets)

    async def chat_room_page(request: Request) -> Response:
        room_id = request.params["room_id"]
        if not AGGREGATE_ID_RE.match(room_id):
            return json_response(
                error(
                    400, "bad_request", f"room id {room_id!r} must match {AGGREGATE_ID_RE.pattern}."
                )
            )
        page = Response.html(chat_page(room_id, auth=fleet.door.mode))
        page.set_header("Content-Security-Policy", PAGE_POLICY)
        page.set_header("Cache-Control", "no-store")
        return page

    api.get(SCRIPT_PATH, hidden=True)(chat_script)
    api.get(STYLESHEET_PATH, hidden=True)(chat_stylesheet)
    api.bind(CHAT_PAGE, chat_room_page)
