"""Password hashing with argon2 (argon2-cffi): the only place passwords are handled."""

from __future__ import annotations

from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from caldav_bridge.domain.errors import InvalidInput

# Argon2id with one of OWASP's recommended equivalent settings (7 MiB, 5 passes): the
# library's default takes 64 MiB per check, which would dominate a calendar server's memory.
# Hashes made with other parameters still verify: each hash carries its own.
_hasher = PasswordHasher(time_cost=5, memory_cost=7 * 1024, parallelism=1)


@cache
def _dummy_hash() -> str:
    """Verified against when a user has no password, so that it costs the same time."""
    return _hasher.hash("caldav-bridge: no such user")


MINIMUM_LENGTH = 8


def check_new_password(password: str) -> str:
    """``password`` if a user may be given it: the one rule for the command and the pages."""
    if len(password) < MINIMUM_LENGTH:
        raise InvalidInput(f"a password has at least {MINIMUM_LENGTH} characters")
    return password


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True when ``password`` matches; constant-time, and as slow for a missing hash."""
    try:
        return _hasher.verify(password_hash or _dummy_hash(), password) and bool(password_hash)
    except (VerificationError, InvalidHashError):
        return False
