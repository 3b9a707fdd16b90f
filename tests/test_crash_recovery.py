"""A server killed in the middle of a write leaves nothing half-written (PostgreSQL: the test
holds a lock the write needs, so the server is stopped with the transaction half done)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, func, select, text

from caldav_bridge.db import Database
from caldav_bridge.domain import changelog
from caldav_bridge.domain.models import Booking, Interaction, InteractionLink, OutboxMessage, User
from tests.helpers import free_port, fresh_postgres, wait_for_http

BIN = Path(sys.executable).parent

EVENT = "\r\n".join(
    [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//test//EN",
        "BEGIN:VEVENT",
        "UID:killed-mid-write",
        "DTSTAMP:20300101T000000Z",
        "DTSTART:20300107T100000Z",
        "DTEND:20300107T110000Z",
        "SUMMARY:Never half-written",
        "ORGANIZER:mailto:alice@example.com",
        "ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:bob@example.com",
        "ATTENDEE;CUTYPE=ROOM;PARTSTAT=NEEDS-ACTION:mailto:everest@example.com",
        "END:VEVENT",
        "END:VCALENDAR",
        "",
    ]
)


def _counts(database: Database) -> tuple[int, ...]:
    with database.session() as session:
        return tuple(
            int(session.scalar(select(func.count()).select_from(table)) or 0)
            for table in (Interaction, InteractionLink, Booking, OutboxMessage)
        )


@pytest.mark.postgresql
def test_a_server_killed_in_the_middle_of_a_put_leaves_nothing_half_written(
    postgres_database: str,
) -> None:
    database = fresh_postgres(postgres_database)
    before = _counts(database)
    port = free_port()
    env = {**os.environ, "CALDAV_BRIDGE_DATABASE_URL": postgres_database}
    env.pop("CALDAV_BRIDGE_CONFIG", None)
    server = subprocess.Popen(
        [str(BIN / "caldav-bridge"), "serve", "--port", str(port), "--log-level", "warning"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    holder = create_engine(postgres_database)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/")
        with holder.connect() as blocker:
            # The lock on alice's change log, which a write takes last, just before it commits:
            # held here, the write waits with every row of its transaction written.
            alice = blocker.scalar(select(User.id).where(User.login == "alice"))
            key = changelog._lock_key(changelog.user_calendar(int(alice or 0)))
            blocker.execute(text("SELECT pg_advisory_lock(:space, :key)"), _lock(key))
            client = httpx.Client(auth=("alice", "alice"), timeout=60)
            request = client.build_request(
                "PUT",
                f"http://127.0.0.1:{port}/alice/interactions/killed-mid-write.ics",
                content=EVENT,
                headers={"Content-Type": "text/calendar"},
            )
            sent = _send_in_background(client, request)
            with holder.execution_options(isolation_level="AUTOCOMMIT").connect() as observer:
                _wait_for_a_blocked_write(observer)
            server.send_signal(signal.SIGKILL)
            server.wait(timeout=30)
            blocker.execute(text("SELECT pg_advisory_unlock(:space, :key)"), _lock(key))
            blocker.rollback()
            sent.join(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
        holder.dispose()
    assert _counts(database) == before
    database.dispose()


def _lock(key: int) -> dict[str, int]:
    return {"space": changelog._LOCK_SPACE, "key": key}


def _send_in_background(client: httpx.Client, request: httpx.Request) -> Any:
    def send() -> None:
        with contextlib.suppress(httpx.TransportError):  # the server died: expected
            client.send(request)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


def _wait_for_a_blocked_write(observer: Any) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        waiting = observer.execute(
            text(
                # backend_xid: the waiting transaction has written rows already
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND backend_xid IS NOT NULL AND datname = current_database()"
            )
        ).scalar()
        if waiting:
            return
        time.sleep(0.05)
    raise AssertionError("the write never waited, rows written, for the change log's lock")
