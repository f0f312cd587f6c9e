"""The console's sign-in and form protection: the login page, the session cookie, CSRF tokens.

Signing in puts the bearer token in an HttpOnly, SameSite=Strict cookie scoped to
``/console`` (Secure when the request came over TLS); the door reads it there only. Every POST
form carries a CSRF token that must equal the ``eventfleet_csrf`` cookie (double submit: it
holds across console replicas without a shared secret), besides the door's Origin check
(``workers.runtime.door.origins``).
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Mapping
from contextvars import ContextVar

from topics.errors import EventfleetError, Forbidden, Unauthenticated
from workers.http.bodies import read_form
from workers.http.console.html import esc, hidden, page
from workers.http.edge.request import Request
from workers.http.edge.responses import Redirect, Response
from workers.http.queries import failure
from workers.runtime.door.auth import SESSION_COOKIE, Door
from workers.runtime.door.identity import Credentials
from workers.runtime.settings import Settings

CSRF_COOKIE = "eventfleet_csrf"
CSRF_FIELD = "csrf"
_CSRF_KEY = "eventfleet.csrf"
HEADER: ContextVar[str] = ContextVar("console_header", default="")
"""The signed-in principal and its sign-out form, for the page being rendered."""


def csrf_token(request: Request) -> str:
    """This browser's CSRF token (made on its first console page)."""
    token = request.state.get(_CSRF_KEY)
    if not isinstance(token, str):
        token = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(32)
        request.state[_CSRF_KEY] = token
    return token


def csrf_field(request: Request) -> str:
    return hidden(CSRF_FIELD, csrf_token(request))


def check_csrf(request: Request, form: Mapping[str, object]) -> None:
    """Raises Forbidden unless the form's CSRF token equals the browser's cookie."""
    cookie = request.cookies.get(CSRF_COOKIE, "")
    sent = str(form.get(CSRF_FIELD, ""))
    if not cookie or not sent or not hmac.compare_digest(cookie.encode(), sent.encode()):
        raise Forbidden(
            "csrf_token",
            "the form's CSRF token is missing or wrong; reload the console page and submit again.",
        )


def tls(request: Request) -> bool:
    return request.secure or request.headers.get("X-Forwarded-Proto", "") == "https"


def keep_csrf(request: Request, response: Response) -> None:
    """Set the CSRF cookie when this request made the token."""
    token = request.state.get(_CSRF_KEY)
    if isinstance(token, str) and request.cookies.get(CSRF_COOKIE) != token:
        response.set_cookie(
            CSRF_COOKIE,
            token,
            path="/console",
            httponly=True,
            samesite="Strict",
            secure=tls(request),
        )


def _next(raw: str) -> str:
    """Where to go after signing in: a console or chat page only (no open redirect)."""
    if raw.startswith(("/console", "/chat/")) and not raw.startswith("//") and "\\" not in raw:
        return raw
    return "/console"


class Login:
    """``/console/login`` (open), ``/console/logout``."""

    def __init__(self, door: Door, settings: Settings) -> None:
        self.door = door
        self._limits = settings.max_body_bytes, settings.body_timeout_s
        self._actions = settings.console_actions

    def _page(self, request: Request, message: str = "", status: int = 200) -> Response:
        if self.door.mode == "jwt":
            form = (
                '<form method="post" action="/console/login" id="login">'
                + csrf_field(request)
                + hidden("next", _next(request.query.get("next", "/console")))
                + "<p><label>Bearer token (from your identity provider):<br>"
                '<textarea name="token" id="token" required></textarea></label></p>'
                '<p><button type="submit" id="sign-in">Sign in</button></p></form>'
            )
        else:
            form = (
                "<p>This fleet takes your identity from the authenticating proxy in front of it "
                '(EVENTFLEET_AUTH=proxy) or lets anyone in (none): <a href="/console">open the '
                "console</a>.</p>"
            )
        error = f'<p class="bad" id="error">{esc(message)}</p>' if message else ""
        text = page("Sign in", error + form, actions=self._actions, auth=self.door.mode)
        response = Response.html(text, status)
        keep_csrf(request, response)
        return response

    async def show(self, request: Request) -> Response:
        return self._page(request)

    async def sign_in(self, request: Request) -> Response:
        if self.door.mode != "jwt":
            return self._page(request)
        try:
            form = await read_form(request, *self._limits)
        except EventfleetError as e:
            answer = failure(e)
            return self._page(request, str(answer.body["message"]), answer.status)
        check_csrf(request, form)
        token = str(form.get("token", "")).strip()
        try:
            await self.door.authenticator.authenticate(
                Credentials(authorization=(f"Bearer {token}",))
            )
        except Unauthenticated as e:
            self.door.count_unauthenticated(e.reason)
            return self._page(request, f"not signed in ({e.reason}): {e}", 401)
        response = Response(content_type=None)
        response.set_cookie(
            SESSION_COOKIE,
            token,
            path="/console",
            httponly=True,
            samesite="Strict",
            secure=tls(request),
        )
        raise Redirect(_next(str(form.get("next", "/console"))), response=response)

    async def sign_out(self, request: Request) -> Response:
        form = await read_form(request, *self._limits)
        check_csrf(request, form)
        response = Response(content_type=None)
        response.del_cookie(SESSION_COOKIE, path="/console")
        raise Redirect("/console/login", response=response)
