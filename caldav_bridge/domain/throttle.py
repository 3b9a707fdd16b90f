"""Failed logins, counted per login and per client address: past a few, further tries wait.

One ``Throttle`` per server process serves CalDAV's Basic authentication and the CRM's login
form. Each counted failure after the first ``free`` ones blocks the login (or the address) for
a delay that doubles with each, from 1 s up to ``MAX_DELAY``; tries during a block are answered
429 with Retry-After, without checking the password (no argon2 for an attacker), and are not
counted. A failure is counted once per distinct wrong password, so a calendar client repeating
a stale password is no attack and does not lock its user out. A success clears the login's
count, and the login and address it came from stay exempt from the login's blocks for a day:
an attacker guessing a user's password does not keep the user out from their own device.
Counts are forgotten after ``WINDOW`` seconds without failure; the tables are bounded (the
oldest entries go first), so spraying logins cannot grow them without end. The state is the
process's own: with several server processes, each counts its own share.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

FREE_PER_LOGIN = 5
FREE_PER_ADDRESS = 20  # several people behind one address (an office, a proxy) mistype too
MAX_DELAY = 60.0
WINDOW = 15 * 60.0
KNOWN_FOR = 24 * 3600.0
MAX_ENTRIES = 10_000
_MAX_TRIED = 64  # distinct wrong passwords remembered per entry


@dataclass
class _Record:
    failures: int = 0
    last: float = 0.0
    blocked_until: float = 0.0
    tried: set[bytes] = field(default_factory=set)


class _Bounded(OrderedDict[str, _Record]):
    def record(self, key: str, now: float) -> _Record:
        found = self.get(key)
        if found is None or now - found.last > WINDOW:
            found = _Record()
        self[key] = found
        self.move_to_end(key)
        while len(self) > MAX_ENTRIES:
            self.popitem(last=False)
        return found


class Throttle:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._secret = os.urandom(32)
        self._records = _Bounded()
        self._known: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def _keys(login: str, address: str) -> tuple[str, str]:
        return f"login:{login.strip().lower()}", f"address:{address}"

    def wait(self, login: str, address: str) -> int:
        """Seconds before a try of ``login`` from ``address`` is heard (0: now)."""
        by_login, by_address = self._keys(login, address)
        now = self._clock()
        with self._lock:
            until = [self._blocked(by_address, now)]
            known = self._known.get((by_login, address), 0.0) > now
            if not known:
                until.append(self._blocked(by_login, now))
        return math.ceil(max(until) - now) if max(until) > now else 0

    def _blocked(self, key: str, now: float) -> float:
        found = self._records.get(key)
        return found.blocked_until if found is not None and now - found.last <= WINDOW else 0.0

    def failed(self, login: str, address: str, password: str) -> None:
        """Count a failed try (once per distinct login and wrong password)."""
        tried = f"{login.strip().lower()}\x00{password}".encode()
        fingerprint = hmac.new(self._secret, tried, hashlib.sha256).digest()
        now = self._clock()
        with self._lock:
            for key, free in zip(
                self._keys(login, address), (FREE_PER_LOGIN, FREE_PER_ADDRESS), strict=True
            ):
                found = self._records.record(key, now)
                if fingerprint in found.tried:
                    continue
                if len(found.tried) < _MAX_TRIED:
                    found.tried.add(fingerprint)
                found.failures += 1
                found.last = now
                if found.failures >= free:
                    delay = min(MAX_DELAY, 2.0 ** (found.failures - free))
                    found.blocked_until = now + delay

    def succeeded(self, login: str, address: str) -> None:
        by_login, _ = self._keys(login, address)
        now = self._clock()
        with self._lock:
            self._records.pop(by_login, None)
            self._known[(by_login, address)] = now + KNOWN_FOR
            self._known.move_to_end((by_login, address))
            while len(self._known) > MAX_ENTRIES:
                self._known.popitem(last=False)


def reason(seconds: int) -> str:
    return f"too many failed logins: try again in {seconds} s"
