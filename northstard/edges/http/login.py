"""The browser's way in: ``GET``/``POST /login``, ``POST /logout``, and the session cookie.

``POST /login`` with a form field ``token`` sets the session cookie (HttpOnly,
SameSite=Strict, Path=/, Secure over TLS or with ``auth.cookie_secure =
"always"``) and redirects to the dashboard; a wrong token shows the page
again with an error (401). ``POST /logout`` revokes the session cookie it
carries for good (``revoked.py``: kept on disk until the cookie's expiry) and
clears it. The page has no inline script (the CSP forbids
it): ``static/login.js``, ``static/theme.css`` and ``static/login.css``. With no tokens
configured there is nothing to log in to, and both redirect to ``/``.
"""

from __future__ import annotations

from html import escape

import structlog
import trio
from quart import Quart, Response, request

from northstard.policy.access import origin_allowed
from northstard.policy.auth import Authenticator, TokenEntry, cookie
from northstard.policy.revoked import write_pending

__all__ = ["LOGIN_ASSETS", "add_login_routes", "end_session", "request_head", "see_other", "start_session"]

log = structlog.get_logger("northstard.web")

LOGIN_ASSETS = ("/static/login.js", "/static/theme.css", "/static/login.css")
ERRORS = {
    "token": "That token is not accepted.",
    "link": "The token in that link is not accepted. Paste a valid one.",
}
PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <meta name="color-scheme" content="light dark">
  <title>northstard · sign in</title>
  <link rel="icon" href="data:,">
  <link rel="stylesheet" href="/static/theme.css">
  <link rel="stylesheet" href="/static/login.css">
  <script type="module" src="/static/login.js"></script>
</head>
<body>
  <main class="login">
    <h1><span class="logo" aria-hidden="true">✦</span> northstard</h1>
    <form method="post" action="/login" data-testid="login-form">
      <label for="token">API token</label>
      <input id="token" name="token" type="password" autocomplete="current-password" required
             spellcheck="false" autocapitalize="off" data-testid="login-token">
      <p class="error" id="login-error" role="alert" data-testid="login-error"{hidden}>{error}</p>
      <button type="submit" data-testid="login-submit">Sign in</button>
    </form>
    <p class="hint">An administrator creates tokens with <code>northstard token new</code>.</p>
  </main>
</body>
</html>
"""


def request_head() -> dict[str, str]:
    """The headers auth and CORS read, lower-cased, as the raw edges see them."""
    names = ("authorization", "cookie", "origin", "access-control-request-method")
    return {name: request.headers[name] for name in names if name in request.headers}


def see_other(location: str) -> Response:
    """A 303 redirect (the browser follows it with a GET)."""
    return Response("", status=303, headers={"Location": location})


def login_page(error: str = "", status: int = 200) -> Response:
    body = PAGE.format(hidden="" if error else " hidden", error=escape(error))
    return Response(body, status=status, mimetype="text/html",
                    headers={"Cache-Control": "no-store"})


def _secure(auth: Authenticator) -> bool:
    return auth.cookie_secure == "always" or request.scheme in ("https", "wss")


def start_session(response: Response, auth: Authenticator, entry: TokenEntry) -> Response:
    response.set_cookie(auth.cookie_name, auth.session(entry), max_age=auth.lifetime_s, path="/",
                        secure=_secure(auth), httponly=True, samesite="Strict")
    response.headers["Cache-Control"] = "no-store"
    return response


def end_session(response: Response, auth: Authenticator) -> Response:
    response.set_cookie(auth.cookie_name, "", max_age=0, path="/", secure=_secure(auth),
                        httponly=True, samesite="Strict")
    return response


def _cross_site() -> bool:
    """A form posted from another page than ours (login CSRF).

    Browsers say so in ``Sec-Fetch-Site``; without it, the Origin decides. A form
    post from a page with ``Referrer-Policy: no-referrer`` (ours) has ``Origin: null``.
    """
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None:
        return site not in ("same-origin", "none")
    origin = request.headers.get("Origin")
    return origin not in (None, "null") and not origin_allowed(origin, request.headers.get("Host", ""), ())


def add_login_routes(app: Quart, auth: Authenticator) -> None:
    @app.route("/login", methods=["GET"])
    async def login_form() -> Response:
        if not auth.enabled or auth.identify(request_head(), {}) is not None:
            return see_other("/")
        return login_page(ERRORS.get(request.args.get("error", ""), ""))

    @app.route("/login", methods=["POST"])
    async def login() -> Response:
        if not auth.enabled:
            return see_other("/")
        if _cross_site():
            return login_page("Sign in from this page, not another site's.", 403)
        form = await request.form
        entry = auth.check_token(form.get("token", "").strip())
        if entry is None:
            return login_page(ERRORS["token"], 401)
        return start_session(see_other("/"), auth, entry)

    writing = trio.Lock()  # one write of the revocations at a time, in order

    @app.route("/logout", methods=["POST"])
    async def logout() -> Response:
        if _cross_site():
            return login_page("Sign out from this page, not another site's.", 403)
        if auth.revoke(cookie(request.headers.get("cookie"), auth.cookie_name)):
            async with writing:
                await _save_revoked(auth)
        return end_session(see_other("/login"), auth)


async def _save_revoked(auth: Authenticator) -> None:
    """Write what logout added (a worker thread); a failure is logged, the logout holds until restart."""
    pending = auth.revoked.take_pending()
    if pending is None or auth.revoked_path is None:
        return
    try:
        await trio.to_thread.run_sync(write_pending, auth.revoked_path, pending)
    except OSError as exc:
        auth.revoked.save_failed()
        log.error("cannot save a logout: it holds until the daemon restarts",
                  path=str(auth.revoked_path), error=exc.strerror)
