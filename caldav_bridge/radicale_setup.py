"""Radicale wired to the CRM database: its configuration, the shared engine, the HTTP server.

The storage, auth and rights plugins in ``plugins/`` read two extra options of Radicale's
``[storage]`` section: ``database_url`` and ``public_url``. One ``Database`` (engine and
connection pool) is shared by the plugins of a process; all state lives in the database, so
several processes can serve one PostgreSQL database side by side.
"""

from __future__ import annotations

import gc
import logging
import re
import socket
import threading
from functools import cache
from typing import Any

from radicale import config as radicale_config
from radicale import log as radicale_log
from radicale import server as radicale_server

from caldav_bridge.config import Settings
from caldav_bridge.db import Database

PLUGINS = {
    "storage": "plugins.radicale_bridge_storage",
    "auth": "plugins.radicale_bridge_auth",
    "rights": "plugins.radicale_bridge_rights",
}


@cache
def shared_database(url: str) -> Database:
    return Database(url)


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
            "server": {"max_content_length": "10000000"},
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
    """The WSGI application, its plugins warmed up. What start-up made lives as long as the
    process: it is frozen out of the garbage collector's full passes, which would otherwise
    rescan it while a large listing allocates its rows."""
    from caldav_bridge.caldav_app import BridgeApplication

    app = BridgeApplication(configuration)
    gc.freeze()
    return app


class Server:
    """Radicale's own threaded HTTP server running the bridge on one address."""

    def __init__(self, configuration: Any, host: str, port: int) -> None:
        self.httpd = radicale_server.ParallelHTTPServer(
            configuration, socket.AF_INET, (host, port), radicale_server.RequestHandler
        )
        self.httpd.set_app(application(configuration))
        self.host, self.port = host, self.httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def serve_forever(self) -> None:
        self.httpd.serve_forever()

    def start_in_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, daemon=True, name="caldav-bridge")
        thread.start()
        return thread

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
