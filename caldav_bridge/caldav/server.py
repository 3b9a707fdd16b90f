"""Radicale wired to the CRM database: its configuration, the shared engine, the HTTP server.

The storage, auth and rights plugins in ``plugins/`` read two extra options of Radicale's
``[storage]`` section: ``database_url`` and ``public_url``. One ``Database`` (engine and
connection pool) is shared by the plugins of a process; all state lives in the database, so
several processes can serve one PostgreSQL database side by side.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
import re
import resource
import threading
import time
from functools import cache
from typing import Any

from radicale import config as radicale_config
from radicale import log as radicale_log
from waitress import wasyncore
from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.server import TcpWSGIServer
from waitress.task import ThreadedTaskDispatcher

from caldav_bridge.config import Settings
from caldav_bridge.db import Database

PLUGINS = {
    "storage": "plugins.radicale_bridge_storage",
    "auth": "plugins.radicale_bridge_auth",
    "rights": "plugins.radicale_bridge_rights",
}


MAX_BODY = 4_000_000  # bytes of any request body
MAX_OBJECT = 2 * 1024 * 1024  # bytes of a calendar object (CalendarServer's default is 1 MB)


@cache
def shared_database(url: str) -> Database:
    return Database(url)


def release_database(url: str) -> None:
    """Close the shared engine's idle connections and forget it: a server stopped in a process
    that goes on (a test run starts hundreds) must not keep its database files open. The engine
    stays usable by whoever still holds it."""
    shared_database(url).engine.dispose()
    shared_database.cache_clear()


def settings_of(configuration: Any) -> Settings:
    """The bridge's settings as the plugins see them in Radicale's configuration."""
    from caldav_bridge.config import load_settings

    options = configuration.options("storage")
    url = configuration.get("storage", "database_url") if "database_url" in options else ""
    public = configuration.get("storage", "public_url") if "public_url" in options else ""
    settings = load_settings(url or None)
    return Settings(settings.database_url, (public or settings.public_url).rstrip("/"))


def radicale_configuration(
    settings: Settings,
    host: str = "127.0.0.1",
    port: int = 5232,
    extra: dict[str, Any] | None = None,
) -> Any:
    """Radicale's configuration for the bridge: the SQL plugins and the bridge's settings."""
    configuration = radicale_config.load()
    configuration.update(
        {
            # Reading and writing an object costs about a second of CPU per MB (Radicale's
            # vobject and icalendar both parse it): the bounds keep any PUT to a few seconds.
            # No sleep after a 5xx: it would hold one of the answering threads.
            "server": {
                "max_content_length": str(MAX_BODY),
                "max_resource_size": str(MAX_OBJECT),
                "delay_on_error": "0",
            },
            "storage": {
                "type": PLUGINS["storage"],
                "database_url": settings.database_url,
                "public_url": settings.public_url,
            },
            "auth": {"type": PLUGINS["auth"], "delay": "0"},
            "rights": {"type": PLUGINS["rights"]},
            "web": {"type": "none"},
            "logging": {"mask_passwords": "True"},
        },
        "caldav-bridge",
    )
    if extra:
        configuration.update(extra, "caldav-bridge (overrides)", privileged=True)
    return configuration


class _SecretsMasked(logging.Filter):
    """Feed addresses are secrets: the request log names the feed, not its token."""

    _FEED = re.compile(r"(/\.bridge/feeds/[ur]\d+-)[A-Za-z0-9_-]+")

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if "/.bridge/feeds/" in text:
            record.msg, record.args = self._FEED.sub(r"\1…", text), None
        return True


def log_to_stderr(level: str) -> None:
    """Radicale's logging (one line per request at info) and the bridge's, on stderr."""
    radicale_log.setup()
    radicale_log.set_level(level, backtrace_on_debug=False)
    logging.getLogger("caldav_bridge").setLevel(level.upper())
    masked = _SecretsMasked()
    for handler in logging.getLogger().handlers:
        handler.addFilter(masked)


def application(configuration: Any) -> Any:
    """The WSGI application (CalDAV, and the web app at ``/.bridge/``: ``dispatcher``), its
    plugins warmed up. What start-up made lives as long as the process: it is frozen out of
    the garbage collector's full passes, which would otherwise rescan it while a large listing
    allocates its rows."""
    from caldav_bridge.dispatcher import mounted

    app = mounted(configuration)
    gc.freeze()
    return app


# A request must arrive whole within the server's timeout of its first byte, plus one second per
# this many bytes of body: a client that sends its headers (or its body) byte by byte is cut off.
_MIN_BODY_RATE = 16_000
# Descriptors kept for the process itself (database connections, logs, the poll loop); each
# connection may use three (its socket, and a temporary file each for a large body and answer).
_RESERVED_DESCRIPTORS = 64
_DESCRIPTORS_PER_CONNECTION = 3


_M_ARENA_MAX = -8  # glibc's mallopt parameter


def _fewer_malloc_arenas() -> None:
    """Two malloc arenas for the process, as MALLOC_ARENA_MAX=2 would: glibc gives threads
    arenas of their own, and with eight answering threads the resident memory crept up (91 to
    126 MiB over 100,000 requests; flat with two). Nothing where the C library has no mallopt."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).mallopt(_M_ARENA_MAX, 2)


def _connection_limit() -> int:
    """As many open connections as the descriptor limit (``ulimit -n``) leaves room for: past
    it, new connections wait to be accepted instead of failing for want of descriptors."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    room = (soft - _RESERVED_DESCRIPTORS) // _DESCRIPTORS_PER_CONNECTION
    return max(8, min(room, 1000))


class _TimedParser(HTTPRequestParser):  # type: ignore[misc]
    """waitress's request parser, remembering when the request's first byte came."""

    def __init__(self, adj: Adjustments) -> None:
        super().__init__(adj)
        self.began = time.monotonic()

    def overdue(self, now: float, timeout: float, body_limit: int) -> bool:
        body = body_limit if self.chunked else self.content_length
        allowed = timeout + (body / _MIN_BODY_RATE if self.headers_finished else 0)
        return now - self.began > allowed


class _Channel(HTTPChannel):  # type: ignore[misc]
    parser_class = _TimedParser


class _Listener(TcpWSGIServer):  # type: ignore[misc]
    """waitress's listening socket; its regular maintenance also closes the connections whose
    request is overdue (waitress itself only closes idle ones)."""

    channel_class = _Channel

    def maintenance(self, now: float) -> None:
        super().maintenance(now)
        moment = time.monotonic()
        for channel in list(self.active_channels.values()):
            request = channel.request
            if request is not None and request.overdue(
                moment, self.adj.channel_timeout, self.adj.max_request_body_size
            ):
                channel.will_close = True


def _sized(app: Any) -> Any:
    """The application, every answer of which carries its Content-Length: waitress closes the
    connection after an answer without one (Radicale sends none with an empty body, e.g. a
    PUT's 201), which would end a client's keep-alive connection at each write."""

    def sized(environ: Any, start_response: Any) -> Any:
        held: list[Any] = []
        body = app(environ, lambda *answer: held.append(answer))
        status, headers, *rest = held[-1]
        if isinstance(body, list) and not any(k.lower() == "content-length" for k, _ in headers):
            headers = [*headers, ("Content-Length", str(sum(len(part) for part in body)))]
        start_response(status, headers, *rest)
        return body

    return sized


class Server:
    """The bridge served by waitress: an asynchronous loop reads whole requests (so slow
    clients hold no thread) and a fixed pool of threads answers them; idle and overdue
    connections are closed after Radicale's ``[server] timeout``, and there are never more
    open connections than the descriptor limit allows."""

    def __init__(self, configuration: Any, host: str, port: int) -> None:
        timeout = float(configuration.get("server", "timeout"))
        adjustments = Adjustments(
            host=host,
            port=port,
            threads=configuration.get("server", "max_connections"),
            connection_limit=_connection_limit(),
            channel_timeout=max(1, round(timeout)),
            cleanup_interval=max(1, round(timeout / 4)),
            # The application answers a body over the limit with its own 413 and reason;
            # waitress refuses one larger still (or a chunked one) before buffering it.
            max_request_body_size=configuration.get("server", "max_content_length") + 1,
            asyncore_use_poll=True,
            ident="caldav-bridge",
        )
        self._map: dict[int, Any] = {}
        _fewer_malloc_arenas()  # before the threads start
        self._dispatcher = ThreadedTaskDispatcher()
        self._dispatcher.set_thread_count(adjustments.threads)
        app = _sized(application(configuration))
        self._listeners = [
            _Listener(
                app,
                self._map,
                dispatcher=self._dispatcher,
                adj=adjustments,
                sockinfo=sockinfo,
            )
            for sockinfo in adjustments.listen
        ]
        self.host, self.port = host, int(self._listeners[0].effective_port)
        self._database_url = settings_of(configuration).database_url
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self._stopped.set()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def serve_forever(self) -> None:
        self._stopped.clear()
        try:
            while not self._stopping.is_set():
                wasyncore.loop(timeout=1.0, map=self._map, use_poll=True, count=1)
        finally:
            self._stopped.set()

    def start_in_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, daemon=True, name="caldav-bridge")
        thread.start()
        return thread

    def stop(self) -> None:
        """Stop serving, let the requests being answered finish, close every socket."""
        self._stopping.set()
        self._listeners[0].pull_trigger()
        self._stopped.wait(timeout=10)
        self._dispatcher.shutdown()
        wasyncore.close_all(self._map)
        release_database(self._database_url)
