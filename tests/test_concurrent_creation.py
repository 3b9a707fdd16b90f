"""Several clients creating the same thing at the same moment: one creates it, the others get
what they would have got a moment later (an update, or a 4xx saying why), never a 500.

On PostgreSQL the losers of such a race hit a unique constraint (or a deadlock) in their
transaction; the server runs their request again, and it sees the winner's row.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable

import httpx
from sqlalchemy import func, select

from caldav_bridge.domain.models import Interaction, StoredCollection, StoredItem
from tests.conftest import RunningServer
from tests.test_scheduling import _attendee, _event

CLIENTS = 6


def _at_once(
    server: RunningServer, request: Callable[[httpx.Client], httpx.Response]
) -> Counter[int]:
    """``request`` sent by CLIENTS clients of alice's at the same moment: how many got each
    status."""
    barrier = threading.Barrier(CLIENTS)
    statuses: list[int] = []

    def send() -> None:
        with httpx.Client(base_url=server.url, auth=("alice", "alice"), timeout=60) as client:
            barrier.wait()
            statuses.append(request(client).status_code)

    threads = [threading.Thread(target=send) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(statuses) == CLIENTS
    return Counter(statuses)


def _count(server: RunningServer, query: object) -> int:
    with server.world.database.session() as session:
        return int(session.scalar(query))  # type: ignore[call-overload]


def test_clients_putting_one_new_uid_at_once_create_it_once_and_update_it(
    server: RunningServer,
) -> None:
    text = _event("same-uid", _attendee("bob@example.com"))
    statuses = _at_once(
        server, lambda client: client.put("/alice/interactions/same-uid.ics", content=text)
    )
    # 201 when Radicale did not see it before; 409 (a refusal with its reason, on PostgreSQL
    # in about 1 run in 4) when the winner committed between this request's looks, as for
    # one's own calendars below: it is never edited from a stale look, never a 5xx.
    assert set(statuses) <= {201, 204, 409}, statuses
    assert statuses[201] + statuses[204] >= 1, statuses
    assert _count(server, select(func.count(Interaction.id))) == 1


def test_clients_creating_one_new_uid_only_if_absent_get_412_but_one(
    server: RunningServer,
) -> None:
    text = _event("only-once", _attendee("bob@example.com"))
    statuses = _at_once(
        server,
        lambda client: client.put(
            "/alice/interactions/only-once.ics", content=text, headers={"If-None-Match": "*"}
        ),
    )
    # 412, or 409 naming the UID when the winner committed between this request's two looks
    # (on PostgreSQL, 3 of 5 losers in one CI run): a refusal with its reason, never a 5xx.
    assert statuses[201] == 1, statuses
    assert set(statuses) <= {201, 409, 412}, statuses
    assert _count(server, select(func.count(Interaction.id))) == 1


def test_clients_making_one_calendar_at_once_make_it_once(server: RunningServer) -> None:
    statuses = _at_once(server, lambda client: client.request("MKCALENDAR", "/alice/team/"))
    assert statuses == {201: 1, 409: CLIENTS - 1}
    query = select(func.count(StoredCollection.id)).where(StoredCollection.path == "alice/team")
    assert _count(server, query) == 1


def test_clients_putting_one_new_item_in_their_own_calendar_store_it_once(
    server: RunningServer,
) -> None:
    with httpx.Client(base_url=server.url, auth=("alice", "alice")) as client:
        assert client.request("MKCALENDAR", "/alice/own/").status_code == 201
    text = _event("own-item")
    statuses = _at_once(server, lambda client: client.put("/alice/own/own-item.ics", content=text))
    # 409: Radicale's own look for the UID, outside the transaction, saw the winner's item
    # after its look for the name did not (no-uid-conflict).
    assert set(statuses) <= {201, 204, 409}
    assert _count(server, select(func.count(StoredItem.id))) == 1


def test_clients_setting_properties_of_their_home_at_once_all_succeed(
    server: RunningServer,
) -> None:
    body = (
        '<propertyupdate xmlns="DAV:"><set><prop><displayname>Alice at home</displayname>'
        "</prop></set></propertyupdate>"
    )
    statuses = _at_once(server, lambda client: client.request("PROPPATCH", "/alice/", content=body))
    assert statuses == {207: CLIENTS}
    query = select(func.count(StoredCollection.id)).where(StoredCollection.path == "alice")
    assert _count(server, query) == 1
