"""The bridge's own WSGI application (PEP 3333), mounted at ``/.bridge/`` beside CalDAV
(``caldav_bridge.dispatcher``); its endpoints are in ``endpoints``.

It does for its requests what Radicale does for CalDAV's: the door's checks of the path and
headers (the CalDAV side's own, through the ``Gate``), HTTP Basic login (the auth plugin's
check and the process's login throttle: the messenger endpoints need it, and wrong credentials
are refused on any path, as CalDAV refuses them), HEAD as GET without the body, 405 for other
methods, 503 while the database cannot be reached, gzip by the client's Accept-Encoding,
Content-Length, and a line of log per request (the path without its query, which may carry a
token).
"""

from __future__ import annotations

import logging
import time
import zlib
from collections.abc import Iterable
from http import HTTPStatus

from sqlalchemy.exc import OperationalError

from caldav_bridge.db import Database, run_again_if_raced
from caldav_bridge.domain import links, throttle
from caldav_bridge.domain.errors import BridgeError, status_of
from caldav_bridge.web import endpoints
from caldav_bridge.web.http import (
    Answer,
    Environ,
    Gate,
    Request,
    StartResponse,
    json_answer,
    refusal,
    text,
)

logger = logging.getLogger("caldav_bridge")

METHODS = ("GET", "HEAD", "POST")
COMPRESS_FROM = 1024  # bytes: smaller answers are sent as they are
RETRY_AFTER_SECONDS = 10  # while the database cannot be reached
RACE_ATTEMPTS = 3  # a request that lost a race with a concurrent one is run again


def _status_line(status: HTTPStatus) -> str:
    return f"{status.value} {status.phrase}"


def _compressed(answer: Answer, environ: Environ, gzip: bool) -> Answer:
    """The answer gzipped at zlib's fastest level, when it is worth it and the client takes it
    (``gzip``)."""
    if len(answer.body) < COMPRESS_FROM:
        return answer
    headers = {**answer.headers, "Vary": "Accept-Encoding"}
    if environ.get("REQUEST_METHOD") == "HEAD" or not gzip:
        return Answer(answer.status, headers, answer.body)
    compressor = zlib.compressobj(1, wbits=16 + zlib.MAX_WBITS)
    body = compressor.compress(answer.body) + compressor.flush()
    return Answer(answer.status, {**headers, "Content-Encoding": "gzip"}, body)


def _route(path: str) -> str:
    """The path under ``/.bridge/``, without empty segments (``//`` reads as ``/``)."""
    return "/".join(part for part in path[len(links.PREFIX) :].split("/") if part)


def _unavailable(exc: OperationalError) -> Answer:
    logger.warning("database unavailable: %s", exc.orig)
    return text(
        HTTPStatus.SERVICE_UNAVAILABLE,
        "the calendar database is unavailable; try again in a moment",
        **{"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


class WebApplication:
    """The pages, the RSVP page, the feeds and the messenger endpoints under ``/.bridge/``."""

    def __init__(self, database: Database, public_url: str, gate: Gate) -> None:
        self.database = database
        self.public_url = public_url
        self.gate = gate

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        began = time.monotonic()
        answer = _compressed(self.answer(environ), environ, self.gate.accepts_gzip(environ))
        headers = {**answer.headers, "Content-Length": str(len(answer.body))}
        start_response(_status_line(answer.status), list(headers.items()))
        logger.info(
            "%s %r from %s: %d in %.3f s",
            environ.get("REQUEST_METHOD"),
            environ.get("PATH_INFO"),
            environ.get("REMOTE_ADDR"),
            answer.status,
            time.monotonic() - began,
        )
        return [] if environ.get("REQUEST_METHOD") == "HEAD" else [answer.body]

    def answer(self, environ: Environ) -> Answer:
        """The answer to one request, its body as it is sent without compression."""
        refused = self.gate.refusal(environ)
        if refused is not None:
            logger.info("refused %s: %s", environ.get("REQUEST_METHOD"), refused.reason)
            return text(refused.status, refused.reason)
        method = str(environ.get("REQUEST_METHOD", ""))
        request = Request(
            environ, "GET" if method == "HEAD" else method, _route(environ["PATH_INFO"]), b""
        )
        chunked = "chunked" in str(environ.get("HTTP_TRANSFER_ENCODING", "")).lower()
        if method == "POST" and chunked and not environ.get("CONTENT_LENGTH"):
            return text(HTTPStatus.LENGTH_REQUIRED, "send the body with a Content-Length")
        if method == "POST":
            request.body = self._body(environ)
            if request.body is None:
                return endpoints.too_large()
        try:
            return self._run(request)
        except Exception:
            logger.exception("%s %r failed", method, environ.get("PATH_INFO"))
            return text(HTTPStatus.INTERNAL_SERVER_ERROR, "a server error occurred")

    @staticmethod
    def _body(environ: Environ) -> bytes | None:
        """The request body, or None when it is larger than the endpoints accept (the door
        has checked that Content-Length is a number)."""
        length = int(environ.get("CONTENT_LENGTH") or 0)
        if length > endpoints.BODY_LIMIT:
            return None
        return bytes(environ["wsgi.input"].read(length)) if length > 0 else b""

    def _run(self, request: Request) -> Answer:
        """The endpoint's answer, run again when it lost a race with a concurrent request;
        503 while the database cannot be reached; a refusal with its status (``status_of``)."""
        try:
            answer = run_again_if_raced(lambda: self._endpoint(request), RACE_ATTEMPTS)
        except OperationalError as exc:
            return _unavailable(exc)
        except BridgeError as exc:
            return refusal(status_of(exc), str(exc))
        return answer or refusal(
            HTTPStatus.CONFLICT,
            "the same thing was being changed by other requests at the same moment: try again",
        )

    def _endpoint(self, request: Request) -> Answer:
        route, database, public_url = request.route, self.database, self.public_url
        user = self._basic_login(request)
        if isinstance(user, Answer):
            return user
        if request.method not in METHODS:
            answer = refusal(
                HTTPStatus.METHOD_NOT_ALLOWED, f"{request.method} is not answered here"
            )
            answer.headers["Allow"] = ", ".join(METHODS)
            return answer
        if request.method == "POST":
            foreign = endpoints.foreign_origin(request, public_url)
            if foreign is not None:
                return refusal(HTTPStatus.FORBIDDEN, foreign)
        if route.startswith(links.RSVP):
            return endpoints.rsvp_page(database, public_url, request, route[len(links.RSVP) :])
        if route.startswith(links.FEEDS):
            return endpoints.feed(database, request, route[len(links.FEEDS) :])
        if route == endpoints.CRM or route.startswith(f"{endpoints.CRM}/"):
            return endpoints.crm_page(database, public_url, request, self.gate.throttle)
        if route in (endpoints.MESSAGES, f"{endpoints.MESSAGES}/read"):
            return endpoints.messages(database, request, user) if user else self._challenge()
        return refusal(HTTPStatus.NOT_FOUND, f"nothing at {request.header('PATH_INFO')}")

    def _basic_login(self, request: Request) -> str | Answer:
        """The user the request's Basic credentials log in ("" without any), or, as for
        CalDAV, its refusal: 429 while the login (or the address) has failed too often of
        late, 401 with the challenge for a wrong password, on any path."""
        credentials = self.gate.credentials(request.environ)
        if credentials is None or not credentials[0]:
            return ""
        login, password = credentials
        limiter, address = self.gate.throttle, request.address
        wait = limiter.wait(login, address) if limiter is not None else 0
        if wait:
            logger.warning("throttled login %r from %s for %d s", login, address, wait)
            return text(
                HTTPStatus.TOO_MANY_REQUESTS, throttle.reason(wait), **{"Retry-After": str(wait)}
            )
        user = self.gate.login(login, password, address)
        if user:
            return user
        logger.warning("failed login %r from %s", login, address)
        return self._challenge()

    def _challenge(self) -> Answer:
        answer = json_answer(
            HTTPStatus.UNAUTHORIZED, {"error": "log in with your calendar login (HTTP Basic)"}
        )
        answer.headers["WWW-Authenticate"] = f'Basic realm="{self.gate.realm}"'
        return answer
