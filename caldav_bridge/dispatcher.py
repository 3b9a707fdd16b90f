"""The server's one WSGI application: requests under ``/.bridge/`` go to the web app
(``web.app``), every other to CalDAV (``caldav.app``). The waitress server
(``caldav.server.Server``) and gunicorn's entry (``caldav_bridge.wsgi``) both serve it.

The web app is given what its requests need of the CalDAV side (``web.http.Gate``): the door's
checks of headers, Basic credentials read as CalDAV reads them, and the auth plugin, whose
password check and login throttle are the process's one.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from radicale.auth import AuthContext

from caldav_bridge.caldav import headers
from caldav_bridge.caldav.server import settings_of, shared_database
from caldav_bridge.domain import links
from caldav_bridge.web.app import WebApplication
from caldav_bridge.web.http import Environ, Gate, StartResponse, WSGIApp


class Dispatcher:
    def __init__(self, caldav: WSGIApp, web: WSGIApp) -> None:
        self.caldav = caldav
        self.web = web

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        under = str(environ.get("PATH_INFO", "")).startswith(links.PREFIX)
        return (self.web if under else self.caldav)(environ, start_response)


def _login_with(auth: Any) -> Any:
    """The auth plugin's check of a password, as Radicale makes it for a CalDAV request."""

    def login(name: str, password: str, address: str) -> str:
        context = AuthContext()  # type: ignore[no-untyped-call]
        context.remote_addr = address
        user, _, _ = auth.login(name, password, context)
        return str(user)

    return login


def mounted(configuration: Any) -> Dispatcher:
    """CalDAV (Radicale with the bridge's plugins) and the web app, for ``configuration``."""
    from caldav_bridge.caldav.app import BridgeApplication

    caldav = BridgeApplication(configuration)
    auth = caldav._auth  # the auth plugin Radicale loaded: the one the CalDAV side uses
    gate = Gate(
        refusal=headers.refusal,
        credentials=headers.basic_credentials,
        accepts_gzip=headers.accepts_gzip,
        login=_login_with(auth),
        throttle=getattr(auth, "throttle", None),
        realm=configuration.get("auth", "realm"),
    )
    settings = settings_of(configuration)
    web = WebApplication(shared_database(settings.database_url), settings.public_url, gate)
    return Dispatcher(caldav, web)
