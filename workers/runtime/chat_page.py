"""A small chat page driven by the chat socket: ``GET /chat/{room_id}`` and its script.

No inline script or style (the server's Content-Security-Policy): the page loads
``/chat/static/chat.js``, which opens ``/v1/rooms/{room_id}/ws``, renders every room event as
it is stored, sends messages, edits, deletes and read receipts as commands, and keeps what it
rendered with its position in ``sessionStorage``: a reload resumes with ``after_version``, so
nothing is lost or shown twice; a dropped socket reconnects the same way.
"""

from __future__ import annotations

import html

from aiohttp import web

from topics.envelope import AGGREGATE_ID_RE
from workers.runtime.answers import error
from workers.runtime.fleet import Fleet
from workers.runtime.http_errors import json_response

SCRIPT_PATH = "/chat/static/chat.js"
PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; "
    "img-src 'self' data:; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
)
"""The console's policy, plus this page's own script and its socket (same origin only)."""

SCRIPT = r"""'use strict';
(function () {
  const room = document.body.dataset.room;
  const key = 'eventfleet-chat:' + room;
  const saved = JSON.parse(sessionStorage.getItem(key) || 'null');
  const st = saved || {version: 0, me: '', messages: [], reads: {}};
  const $ = (id) => document.getElementById(id);
  let socket = null;
  let editing = null;
  $('me').value = st.me;

  function save() { sessionStorage.setItem(key, JSON.stringify(st)); }
  function status(text) { $('status').textContent = text; }
  function uuid() { return crypto.randomUUID(); }

  function render() {
    const list = $('messages');
    list.replaceChildren();
    for (const m of st.messages) {
      const li = document.createElement('li');
      li.id = 'msg-' + m.message_id;
      li.dataset.version = m.version;
      const who = document.createElement('b');
      who.textContent = m.sender_id;
      const text = document.createElement('span');
      text.className = 'content';
      text.textContent = m.content + (m.edited ? ' (edited)' : '');
      li.append(who, ': ', text);
      if (m.sender_id === st.me) {
        for (const [label, act] of [['edit', edit], ['delete', remove]]) {
          const b = document.createElement('button');
          b.type = 'button';
          b.className = label;
          b.textContent = label;
          b.addEventListener('click', () => act(m));
          li.append(' ', b);
        }
      }
      list.append(li);
    }
    const reads = $('reads');
    reads.replaceChildren();
    for (const [reader, r] of Object.entries(st.reads).sort()) {
      const li = document.createElement('li');
      li.id = 'read-' + reader;
      li.textContent = reader + ' read up to ' + r.up_to_message_id;
      reads.append(li);
    }
    $('position').textContent = String(st.version);
  }

  function apply(event) {
    if (event.version <= st.version) return;  // a repeat: already shown
    st.version = event.version;
    const d = event.data;
    const i = st.messages.findIndex((m) => m.message_id === d.message_id);
    if (event.type === 'MessageSent' && i < 0) {
      st.messages.push({message_id: d.message_id, sender_id: d.sender_id, content: d.content,
                        edited: false, version: event.version});
      if (d.sender_id !== st.me && st.me) receiptLater(d.message_id, event.version);
    } else if (event.type === 'MessageEdited' && i >= 0 &&
               st.messages[i].sender_id === d.sender_id) {
      st.messages[i] = {...st.messages[i], content: d.content, edited: true};
    } else if (event.type === 'MessageDeleted' && i >= 0) {
      st.messages.splice(i, 1);
    } else if (event.type === 'MessageRead') {
      const j = st.messages.findIndex((m) => m.message_id === d.up_to_message_id);
      const before = st.reads[d.reader_id];
      const at = j >= 0 ? st.messages[j].version : 0;
      if (!before || at > before.up_to_version) {
        st.reads[d.reader_id] = {up_to_message_id: d.up_to_message_id, up_to_version: at};
      }
    }
  }

  function send(type, data) {
    if (!socket || socket.readyState !== WebSocket.OPEN) { status('not connected'); return; }
    socket.send(JSON.stringify({command_id: uuid(), type: type, data: data}));
  }
  let unreadUpTo = null;
  function receiptLater(messageId, version) {  // one receipt for a burst (or the catch-up)
    const mine = st.reads[st.me];
    if (mine && mine.up_to_version >= version) return;
    if (unreadUpTo === null) setTimeout(receipt, 100);
    unreadUpTo = messageId;
  }
  function receipt() {
    const messageId = unreadUpTo;
    unreadUpTo = null;
    if (st.messages.some((m) => m.message_id === messageId)) {
      send('MessageRead', {reader_id: st.me, up_to_message_id: messageId});
    }
  }
  function edit(m) {
    editing = m.message_id;
    $('text').value = m.content;
    $('text').focus();
  }
  function remove(m) { send('MessageDeleted', {message_id: m.message_id, sender_id: st.me}); }

  $('send').addEventListener('submit', (e) => {
    e.preventDefault();
    st.me = $('me').value.trim();
    save();
    const content = $('text').value;
    if (!st.me || !content) { status('a name and a message, please'); return; }
    if (editing) {
      send('MessageEdited', {message_id: editing, sender_id: st.me, content: content});
      editing = null;
    } else {
      send('MessageSent', {message_id: uuid(), sender_id: st.me, content: content});
    }
    $('text').value = '';
  });
  $('me').addEventListener('input', () => { st.me = $('me').value.trim(); save(); render(); });

  function connect() {
    const scheme = location.protocol === 'https:' ? 'wss://' : 'ws://';
    const url = scheme + location.host + '/v1/rooms/' + encodeURIComponent(room) +
      '/ws?after_version=' + st.version;
    socket = new WebSocket(url);
    socket.addEventListener('open', () => { status('connected'); document.body.dataset.live = '1'; });
    socket.addEventListener('message', (m) => {
      const msg = JSON.parse(m.data);
      if (msg.kind === 'event') { apply(msg.event); save(); render(); }
      else if (msg.kind === 'answer' && msg.status >= 400) { status(msg.body.message); }
      else if (msg.kind === 'error') { status(msg.message); }
    });
    socket.addEventListener('close', () => {
      document.body.dataset.live = '';
      status('reconnecting');
      setTimeout(connect, 1000);
    });
  }
  render();
  connect();
})();
"""


def chat_page(room_id: str) -> str:
    room = html.escape(room_id, quote=True)
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>chat {room} · eventfleet</title>"
        '<link rel="icon" href="data:,">'
        f'<script src="{SCRIPT_PATH}" defer></script></head>'
        f'<body data-room="{room}"><h1>Room {room}</h1>'
        '<p><label>Your name <input id="me" autocomplete="off"></label> '
        '<span id="status">connecting</span> · position <span id="position">0</span></p>'
        '<ul id="messages"></ul>'
        '<form id="send"><input id="text" autocomplete="off" maxlength="4000"> '
        '<button type="submit" id="submit">Send</button></form>'
        '<h2>Read receipts</h2><ul id="reads"></ul></body></html>'
    )


def register_chat_page(fleet: Fleet) -> None:
    """Serve the chat page next to the chat socket (a process with the commands role)."""

    async def page(request: web.Request) -> web.StreamResponse:
        room_id = request.match_info["room_id"]
        if not AGGREGATE_ID_RE.match(room_id):
            return json_response(error(
                400, "bad_request", f"room id {room_id!r} must match {AGGREGATE_ID_RE.pattern}."
            ))  # fmt: skip
        return web.Response(
            text=chat_page(room_id),
            content_type="text/html",
            headers={"Content-Security-Policy": PAGE_POLICY, "Cache-Control": "no-store"},
        )

    async def script(request: web.Request) -> web.Response:
        return web.Response(
            text=SCRIPT,
            content_type="text/javascript",
            headers={"Cache-Control": "max-age=300"},
        )

    web_app: web.Application = fleet.app.web.web_app  # type: ignore[attr-defined]
    web_app.router.add_get(SCRIPT_PATH, script)
    web_app.router.add_get("/chat/{room_id}", page)
