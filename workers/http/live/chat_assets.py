"""The chat page's script and stylesheet (``chat.js``, ``chat.css`` beside this module), served
as files by ``workers.http.live.chat_page``."""

from __future__ import annotations

from importlib.resources import files

_HERE = files(__package__)
SCRIPT = _HERE.joinpath("chat.js").read_text(encoding="utf-8")
STYLE = _HERE.joinpath("chat.css").read_text(encoding="utf-8")
