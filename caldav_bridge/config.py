"""Where settings come from: command line, environment, configuration file, defaults.

Precedence for the database URL: an explicit value (``--database``), then
``CALDAV_BRIDGE_DATABASE_URL``, then ``[database] url`` of the configuration file
(``--config`` or ``CALDAV_BRIDGE_CONFIG``), then an SQLite file in the user's data directory.
"""

from __future__ import annotations

import configparser
import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from caldav_bridge.errors import ConfigurationError

DATABASE_ENV = "CALDAV_BRIDGE_DATABASE_URL"
CONFIG_ENV = "CALDAV_BRIDGE_CONFIG"
DEFAULT_PUBLIC_URL = "http://127.0.0.1:5232"


SECURITY = ("plain", "starttls", "ssl")


@dataclass(frozen=True)
class SmtpSettings:
    """The mail server invitations (iMIP) are sent through; no host: email is not sent."""

    host: str = ""
    port: int = 25
    security: str = "plain"  # plain, starttls or ssl
    username: str = ""
    password: str = ""
    sender: str = "caldav-bridge@localhost"  # the From of every message
    timeout: float = 20.0


@dataclass(frozen=True)
class Settings:
    database_url: str
    public_url: str = DEFAULT_PUBLIC_URL
    smtp: SmtpSettings = SmtpSettings()


def default_sqlite_url() -> str:
    data_dir = Path(platformdirs.user_data_dir("caldav-bridge"))
    return f"sqlite:///{data_dir / 'caldav-bridge.sqlite3'}"


def load_settings(database_url: str | None = None, config_path: str | None = None) -> Settings:
    parser = configparser.ConfigParser()
    path = config_path or os.environ.get(CONFIG_ENV)
    if path:
        try:
            with open(path, encoding="utf-8") as handle:
                parser.read_file(handle)
        except OSError as exc:
            message = f"cannot read configuration file {path}: {exc.strerror}"
            raise ConfigurationError(message) from exc
        except configparser.Error as exc:
            raise ConfigurationError(f"configuration file {path} is malformed: {exc}") from exc
    url = (
        database_url
        or os.environ.get(DATABASE_ENV)
        or parser.get("database", "url", fallback="")
        or default_sqlite_url()
    )
    public_url = parser.get("server", "public_url", fallback=DEFAULT_PUBLIC_URL).rstrip("/")
    return Settings(database_url=url, public_url=public_url, smtp=_smtp(parser))


def _smtp(parser: configparser.ConfigParser) -> SmtpSettings:
    section = "smtp"
    security = parser.get(section, "security", fallback="plain").strip().lower()
    if security not in SECURITY:
        raise ConfigurationError(f"[smtp] security must be one of {', '.join(SECURITY)}")
    default_port = {"plain": 25, "starttls": 587, "ssl": 465}[security]
    try:
        port = parser.getint(section, "port", fallback=default_port)
    except ValueError as exc:
        raise ConfigurationError("[smtp] port must be a number") from exc
    return SmtpSettings(
        host=parser.get(section, "host", fallback="").strip(),
        port=port,
        security=security,
        username=parser.get(section, "username", fallback=""),
        password=parser.get(section, "password", fallback=""),
        sender=parser.get(section, "sender", fallback=SmtpSettings.sender).strip(),
    )
