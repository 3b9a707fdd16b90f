"""The web app's own WSGI types (PEP 3333): a request as the endpoints read it, the answer they
give, and what the app takes from the server it is mounted beside (``Gate``)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Protocol
from urllib.parse import parse_qs

from caldav_bridge.domain.throttle import Throttle

Environ = dict[str, Any]


class StartResponse(Protocol):
    def __call__(
        self, status: str, headers: list[tuple[str, str]], exc_info: Any = None, /
    ) -> Any: ...


WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]


class Refused(Protocol):
    """Why the door refuses a request (``caldav.headers.Refusal``)."""

    @property
    def status(self) -> HTTPStatus: ...

    @property
    def reason(self) -> str: ...


@dataclass(frozen=True)
class Gate:
    """What the web app takes from the server it is mounted beside, so that its requests are
    checked as CalDAV's are: the door's checks of the path and headers, Basic credentials and
    Accept-Encoding read as CalDAV reads them, the auth plugin's password check, the process's
    login throttle (one count of failures for CalDAV, the messenger endpoints and the CRM's
    login form), and the realm the Basic challenge names."""

    refusal: Callable[[Environ], Refused | None]
    credentials: Callable[[Environ], tuple[str, str] | None]
    accepts_gzip: Callable[[Environ], bool]  # Accept-Encoding read as CalDAV reads it
    login: Callable[[str, str, str], str]  # (login, password, address): the user's login or ""
    throttle: Throttle | None
    realm: str


@dataclass
class Answer:
    status: HTTPStatus
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


def json_answer(status: HTTPStatus, value: Any) -> Answer:
    body = json.dumps(value, ensure_ascii=False).encode()
    return Answer(status, {"Content-Type": "application/json"}, body)


def refusal(status: HTTPStatus, reason: str) -> Answer:
    """A refusal of the endpoints that answer JSON: ``{"error": reason}``."""
    return json_answer(status, {"error": reason})


def text(status: HTTPStatus, reason: str, **headers: str) -> Answer:
    body = f"{reason}\n".encode()
    return Answer(status, {"Content-Type": "text/plain; charset=utf-8", **headers}, body)


@dataclass
class Request:
    """One request to the web app, its body read once (it may be run again after a race)."""

    environ: Environ
    method: str  # HEAD is answered as GET, its body dropped
    route: str  # the path under ``/.bridge/``, without slashes at either end
    body: bytes | None  # None when it is larger than the app accepts

    def query(self, name: str) -> str:
        return parse_qs(self.query_string).get(name, [""])[0]

    @property
    def query_string(self) -> str:
        return str(self.environ.get("QUERY_STRING", ""))

    def header(self, name: str) -> str:
        """A request header by its CGI name (``HTTP_HOST``, ``CONTENT_TYPE``), or ""."""
        return str(self.environ.get(name, ""))

    @property
    def address(self) -> str:
        return self.header("REMOTE_ADDR")
