"""Where settings come from: command line, environment, configuration file, defaults.

Precedence for the database URL: an explicit value (``--database``), then
``CALDAV_BRIDGE_DATABASE_URL``, then ``[database] url`` of the configuration file
(``--config`` or ``CALDAV_BRIDGE_CONFIG``), then an SQLite file in the user's data directory.
"""

from __future__ import annotations

import configparser
import os
from dataclasses import dataclass, field
from email.errors import HeaderParseError
from email.headerregistry import Address
from pathlib import Path

import platformdirs

from caldav_bridge.domain.errors import ConfigurationError

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


POLICIES = ("dmarc", "dkim", "none")


@dataclass(frozen=True)
class ImipSettings:
    """What an emailed reply must prove before it is applied (``[imip]``)."""

    # authserv-ids of the mail servers whose Authentication-Results headers are believed
    trusted_authserv_ids: frozenset[str] = frozenset()
    # dmarc: DMARC pass or an aligned DKIM pass; dkim: an aligned DKIM pass; none: no check
    policy: str = "dmarc"
    verify_dkim: bool = False  # check DKIM signatures ourselves (DNS), besides the relay
    case_sensitive_local_part: bool = False
    # attendee address -> the other addresses that may answer for it
    aliases: dict[str, frozenset[str]] = field(default_factory=dict)

    def require_proof_source(self) -> None:
        """Refuse to take replies in when nothing could ever authenticate one."""
        if self.policy != "none" and not self.trusted_authserv_ids and not self.verify_dkim:
            raise ConfigurationError(
                "emailed replies must be authenticated, and nothing is set up to vouch for "
                "them: set [imip] trusted_authserv_ids to the authserv-id your mail server "
                "writes in Authentication-Results, or verify_dkim = yes (policy = none only "
                "if the mail server refuses unauthenticated mail itself); see "
                "config/caldav-bridge.conf"
            )


@dataclass(frozen=True)
class Settings:
    database_url: str
    public_url: str = DEFAULT_PUBLIC_URL
    smtp: SmtpSettings = SmtpSettings()
    imip: ImipSettings = ImipSettings()


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
    return Settings(database_url=url, public_url=public_url, smtp=_smtp(parser), imip=_imip(parser))


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


def _imip(parser: configparser.ConfigParser) -> ImipSettings:
    section = "imip"
    policy = parser.get(section, "policy", fallback="dmarc").strip().lower()
    if policy not in POLICIES:
        raise ConfigurationError(f"[imip] policy must be one of {', '.join(POLICIES)}")
    try:
        verify_dkim = parser.getboolean(section, "verify_dkim", fallback=False)
        case_sensitive = parser.getboolean(section, "case_sensitive_local_part", fallback=False)
    except ValueError as exc:
        raise ConfigurationError(f"[imip] {exc}") from exc
    ids = parser.get(section, "trusted_authserv_ids", fallback="").replace(",", " ").split()
    return ImipSettings(
        trusted_authserv_ids=frozenset(i.lower() for i in ids),
        policy=policy,
        verify_dkim=verify_dkim,
        case_sensitive_local_part=case_sensitive,
        aliases=_aliases(parser.get(section, "aliases", fallback="")),
    )


def _aliases(text: str) -> dict[str, frozenset[str]]:
    """``attendee: alias, alias`` lines; every address a plain one (user@domain)."""
    found: dict[str, frozenset[str]] = {}
    for line in filter(None, (raw.strip() for raw in text.splitlines())):
        attendee, colon, others = line.partition(":")
        if not colon:
            raise ConfigurationError(f"[imip] aliases: {line!r} is not 'attendee: alias, ...'")
        found[_plain_address(attendee)] = frozenset(
            _plain_address(a) for a in others.split(",") if a.strip()
        ) | found.get(_plain_address(attendee), frozenset())
    return found


def _plain_address(text: str) -> str:
    try:
        address = Address(addr_spec=text.strip())
    except (ValueError, HeaderParseError) as exc:
        raise ConfigurationError(f"[imip] aliases: {text.strip()!r} is not an address") from exc
    if not address.username or not address.domain:
        raise ConfigurationError(f"[imip] aliases: {text.strip()!r} is not an address")
    return f"{address.username}@{address.domain.lower()}"
