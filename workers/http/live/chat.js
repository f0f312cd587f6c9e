'use strict';
(function () {
  const body = document.body;
  const room = body.dataset.room;
  const open = body.dataset.auth === 'none';  // the door is open: names are typed, not checked
  const route = '/v1/rooms/' + room + '/ws';
  const $ = (id) => document.getElementById(id);
  let me = open ? (sessionStorage.getItem('eventfleet-chat-name') || '') : '';
  let st = null;
  let socket = null;
  let editing = null;
  let retries = 0;
  const pending = {};  // command_id -> what the command was, for the words of a refusal

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function key() { return 'eventfleet-chat:' + room + ':' + (open ? '' : me); }
  function load() {
    const saved = JSON.parse(sessionStorage.getItem(key()) || 'null');
    st = saved || {version: 0, messages: [], reads: {}};
    body.dataset.version = String(st.version);
  }
  function save() {
    sessionStorage.setItem(key(), JSON.stringify(st));
    body.dataset.version = String(st.version);
  }
  function status(text, cls) {
    const s = $('status');
    s.textContent = text;
    s.className = cls || '';
  }
  function notice(text) { const n = $('notice'); n.textContent = text; n.hidden = !text; }
  function clock(iso) {
    const d = new Date(iso);
    return isNaN(d) ? '' : d.toLocaleTimeString([], {hour: '2-digit', minute: '2-digit'});
  }
  function snippet(text) { return text.length > 40 ? text.slice(0, 39) + '…' : text; }
  function uuid() { return crypto.randomUUID(); }

  function render() {
    const list = $('messages');
    list.replaceChildren();
    const seen = {};  // message id -> the others whose receipt stops there
    for (const [reader, r] of Object.entries(st.reads)) {
      if (reader !== me) (seen[r.up_to_message_id] = seen[r.up_to_message_id] || []).push(reader);
    }
    for (const m of st.messages) {
      const mine = m.sender_id === me;
      const li = el('li', mine ? 'message mine' : 'message');
      li.dataset.id = m.message_id;
      const head = el('div', 'head');
      const who = el('b', 'who', mine ? m.sender_id + ' (you)' : m.sender_id);
      who.dataset.sender = m.sender_id;
      head.append(who, el('time', 'when', clock(m.sent_at)));
      if (m.edited) head.append(el('span', 'edited', 'edited'));
      li.append(head, el('p', 'content', m.content));
      if (mine) {  // only its sender may change a message: no button the fleet would refuse
        const tools = el('div', 'tools');
        for (const [label, act] of [['Edit', edit], ['Delete', remove]]) {
          const b = el('button', label.toLowerCase(), label);
          b.type = 'button';
          b.addEventListener('click', () => act(m));
          tools.append(b);
        }
        li.append(tools);
      }
      const seenBy = seen[m.message_id];
      if (seenBy) li.append(el('div', 'seen', 'Seen by ' + seenBy.sort().join(', ')));
      list.append(li);
    }
    $('empty').hidden = st.messages.length > 0;
    const reads = $('reads');
    reads.replaceChildren();
    for (const [reader, r] of Object.entries(st.reads).sort()) {
      const m = st.messages.find((x) => x.message_id === r.up_to_message_id);
      const upTo = m ? '“' + snippet(m.content) + '”' : 'a message no longer shown';
      const whoHas = reader === me ? 'You have' : reader + ' has';
      const li = el('li', 'read', whoHas + ' read up to ' + upTo);
      li.dataset.reader = reader;
      reads.append(li);
    }
  }

  function apply(event) {
    if (event.version <= st.version) return;  // a repeat: already shown
    st.version = event.version;
    const d = event.data;
    const i = st.messages.findIndex((m) => m.message_id === d.message_id);
    const allowed = i >= 0 && (st.messages[i].sender_id === d.sender_id || d.role);
    if (event.type === 'MessageSent' && i < 0) {
      st.messages.push({message_id: d.message_id, sender_id: d.sender_id, content: d.content,
                        sent_at: event.occurred_at, edited: false, version: event.version});
      if (d.sender_id !== me && me) receiptLater(d.message_id, event.version);
    } else if (event.type === 'MessageEdited' && allowed) {
      st.messages[i] = {...st.messages[i], content: d.content, edited: true};
    } else if (event.type === 'MessageDeleted' && allowed) {
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

  function send(type, data, what) {
    if (!socket || socket.readyState !== WebSocket.OPEN) {
      notice('Not connected yet: try again in a moment.');
      return false;
    }
    const id = uuid();
    if (what) pending[id] = what;
    socket.send(JSON.stringify({command_id: id, type: type, data: data}));
    return true;
  }
  function signed(data, field) {  // with the door open the name is sent; else the token says it
    if (open) data[field] = me;
    return data;
  }
  function refusal(what, answer) {
    const verb = what ? what.verb : 'do that';
    const whose = what && what.owner ? what.owner + '\u2019s message' : 'that message';
    if (answer.reason === 'not_your_message') {
      return 'You may not ' + verb + ' ' + whose + ': only its sender or a moderator may.';
    }
    if (answer.error === 'unauthenticated') return 'Your sign-in expired: sign in again.';
    return 'Not sent: ' + (answer.message || answer.error);
  }

  let unreadUpTo = null;
  function receiptLater(messageId, version) {  // one receipt for a burst (or the catch-up)
    const mine = st.reads[me];
    if (mine && mine.up_to_version >= version) return;
    if (unreadUpTo === null) setTimeout(receipt, 100);
    unreadUpTo = messageId;
  }
  function receipt() {
    const messageId = unreadUpTo;
    unreadUpTo = null;
    if (st.messages.some((m) => m.message_id === messageId)) {
      send('MessageRead', signed({up_to_message_id: messageId}, 'reader_id'));
    }
  }
  function edit(m) {
    editing = m;
    const whose = m.sender_id === me ? 'your message' : m.sender_id + '\u2019s message';
    $('editing-what').textContent = whose;
    $('editing').hidden = false;
    $('submit').textContent = 'Save';
    $('text').value = m.content;
    $('text').focus();
  }
  function stopEditing() {
    editing = null;
    $('editing').hidden = true;
    $('submit').textContent = 'Send';
    $('text').value = '';
  }
  function remove(m) {
    notice('');
    send('MessageDeleted', signed({message_id: m.message_id}, 'sender_id'),
         {verb: 'delete', owner: m.sender_id === me ? '' : m.sender_id});
  }

  $('send').addEventListener('submit', (e) => {
    e.preventDefault();
    notice('');
    if (open) {
      me = $('me').value.trim();
      sessionStorage.setItem('eventfleet-chat-name', me);
      if (!me) { notice('Type your name first.'); return; }
    }
    const content = $('text').value.trim();
    if (!content) return;
    if (editing) {
      const m = editing;
      if (send('MessageEdited', signed({message_id: m.message_id, content: content}, 'sender_id'),
               {verb: 'edit', owner: m.sender_id === me ? '' : m.sender_id})) stopEditing();
    } else if (send('MessageSent', signed({message_id: uuid(), content: content}, 'sender_id'))) {
      $('text').value = '';
    }
  });
  $('cancel').addEventListener('click', stopEditing);
  if (open) {
    $('me').value = me;
    $('me').addEventListener('input', () => { me = $('me').value.trim(); render(); });
  }

  function receive(msg) {
    if (msg.kind === 'event') { apply(msg.event); save(); render(); }
    else if (msg.kind === 'answer') {
      const what = pending[msg.command_id];
      delete pending[msg.command_id];
      if (msg.status >= 400) notice(refusal(what, msg.body));
    } else if (msg.kind === 'error' && msg.error !== 'credential_expired') {
      status(msg.message, 'bad');
    }
  }

  async function ticket() {
    const r = await fetch('/console/tickets', {
      method: 'POST', credentials: 'same-origin', cache: 'no-store',
      headers: {'Content-Type': 'application/json'}, body: JSON.stringify({route: route}),
    });
    if (r.status === 401) return null;
    const answer = await r.json();
    if (!r.ok) throw new Error(answer.message || ('the fleet answered ' + r.status));
    return answer;
  }
  function signedOut() {  // what was shown stays readable; nothing can be sent
    body.dataset.signedIn = '';
    $('signin').hidden = false;
    $('signin-why').textContent = me ? 'Your sign-in expired, ' + me + ': ' : 'Sign in to chat: ';
    $('chat').hidden = !me;
    $('send').hidden = true;
    $('who').textContent = '';
    status('signed out', 'bad');
  }
  function later() {
    retries = Math.min(retries + 1, 6);
    setTimeout(connect, 400 * retries);
  }
  async function connect() {
    let t;
    try {
      t = await ticket();
    } catch (e) {
      status('cannot connect (' + e.message + '); retrying', 'bad');
      later();
      return;
    }
    if (t === null) { signedOut(); return; }
    if (!open && me !== t.principal) { me = t.principal; load(); render(); }
    $('signin').hidden = true;
    $('chat').hidden = false;
    $('send').hidden = false;
    body.dataset.signedIn = '1';
    $('who').textContent = open ? '' : 'signed in as ' + me;
    const scheme = location.protocol === 'https:' ? 'wss://' : 'ws://';
    socket = new WebSocket(scheme + location.host + route + '?after_version=' + st.version +
                           '&ticket=' + encodeURIComponent(t.ticket));
    socket.addEventListener('open', () => {
      retries = 0;
      status('connected', 'good');
      body.dataset.live = '1';
    });
    socket.addEventListener('message', (m) => receive(JSON.parse(m.data)));
    socket.addEventListener('close', (c) => {
      body.dataset.live = '';
      status(c.code === 4401 ? 'your sign-in expired; reconnecting' : 'reconnecting', 'bad');
      later();
    });
  }
  $('sign-in').href = '/console/login?next=' + encodeURIComponent(location.pathname);
  load();
  render();
  connect();
})();
