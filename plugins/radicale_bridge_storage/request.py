"""What the storage keeps for the request being answered, in its thread: the conditions of its
write, the CRM-made collections it looked up, what it wrote, a sync's DAV:limit, and the body
of a PUT as the client wrote it.

The application begins each request (``Storage.begin_request``); outside a request (the
start-up warm-up, the CLI) the state is empty and keeps nothing.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from radicale import storage

from caldav_bridge.caldav.headers import Conditions
from plugins.radicale_bridge_storage.sync import SyncPaging


@dataclass(frozen=True)
class Written:
    """An interaction a request wrote, by the name it wrote it as."""

    interaction_id: int
    schedule_tag: str  # quoted, as the Schedule-Tag header carries it


@dataclass
class RequestState:
    conditions: Conditions = field(default_factory=Conditions)
    # The principals and CRM-made calendars looked up, by path names; None: nothing is kept.
    known: dict[tuple[str, ...], storage.BaseCollection] | None = None
    written: dict[str, Written] = field(default_factory=dict)
    paging: SyncPaging | None = None
    # The body of the PUT being answered, as the client wrote it (Radicale reads its own text).
    sent: str | None = None


class RequestLocal(threading.local):
    """The state of the request each thread answers."""

    state: RequestState

    def __init__(self) -> None:
        self.state = RequestState()
