"""Radicale auth plugin: CRM users and their argon2 password hashes; inactive users refused.

Every request reads the user's row (so deactivation and password changes apply at once, in
every process); the costly argon2 check is remembered per process for a few minutes, keyed by
the stored hash, so that a calendar client's stream of requests does not pay it each time.
Failed logins are counted by the process's ``throttle``: past a few, tries are refused unheard
(the application answers them 429 before they get here).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import threading
import time
from typing import Any

from radicale import auth
from sqlalchemy import select

from caldav_bridge.caldav.server import settings_of, shared_database
from caldav_bridge.domain.models import User
from caldav_bridge.domain.passwords import verify_password
from caldav_bridge.domain.throttle import Throttle

_REMEMBER_SECONDS = 300


class Auth(auth.BaseAuth):
    def __init__(self, configuration: Any) -> None:
        super().__init__(configuration)
        self.database = shared_database(settings_of(configuration).database_url)
        self._secret = os.urandom(32)
        self._verified: dict[tuple[str, str], tuple[bytes, float]] = {}
        self._lock = threading.Lock()
        self.throttle = Throttle()

    def warm_up(self) -> None:
        """Compile the login query and load argon2 before the first client waits for it."""
        self._login("", "")

    def _fingerprint(self, password: str) -> bytes:
        return hmac.new(self._secret, password.encode(), hashlib.sha256).digest()

    def _login_ext(self, login: str, password: str, context: Any) -> str:
        address = str(getattr(context, "remote_addr", None) or "")
        if self.throttle.wait(login, address):
            return ""
        user = self._login(login, password)
        if user:
            self.throttle.succeeded(login, address)
        else:
            self.throttle.failed(login, address, password)
        return user

    def _login(self, login: str, password: str) -> str:
        if "\x00" in login:  # no login has one (and PostgreSQL's text cannot hold one)
            verify_password(None, password)
            return ""
        with self.database.session() as session:
            row = session.execute(
                select(User.login, User.password_hash).where(
                    User.login == login.strip().lower(), User.active.is_(True)
                )
            ).one_or_none()
        if row is None or not row.password_hash:
            verify_password(None, password)  # as slow as a real check: no user enumeration
            return ""
        key = (row.login, row.password_hash)
        fingerprint = self._fingerprint(password)
        with self._lock:
            remembered = self._verified.get(key)
        if (
            remembered
            and remembered[1] > time.monotonic()
            and hmac.compare_digest(remembered[0], fingerprint)
        ):
            return str(row.login)
        if not verify_password(row.password_hash, password):
            return ""
        with self._lock:
            self._verified[key] = (fingerprint, time.monotonic() + _REMEMBER_SECONDS)
        return str(row.login)
