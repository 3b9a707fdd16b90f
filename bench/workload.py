"""The HTTP workload, the same for every server, through one client library (httpx)."""

from __future__ import annotations

import statistics
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

import httpx

from bench.datasets import WEEK, Sample

PROPFIND_ETAGS = (
    '<?xml version="1.0" encoding="utf-8"?><propfind xmlns="DAV:"><prop><getetag/></prop>'
    "</propfind>"
)
PROPFIND_CTAG = (
    '<?xml version="1.0" encoding="utf-8"?><propfind xmlns="DAV:" '
    'xmlns:CS="http://calendarserver.org/ns/"><prop><CS:getctag/><sync-token/></prop></propfind>'
)
WEEK_QUERY = (
    '<?xml version="1.0" encoding="utf-8"?><C:calendar-query xmlns="DAV:" '
    'xmlns:C="urn:ietf:params:xml:ns:caldav"><prop><getetag/><C:calendar-data/></prop>'
    '<C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">'
    '<C:time-range start="{start}" end="{end}"/></C:comp-filter></C:comp-filter></C:filter>'
    "</C:calendar-query>"
)
SYNC = (
    '<?xml version="1.0" encoding="utf-8"?><sync-collection xmlns="DAV:">'
    "<sync-token>{token}</sync-token><sync-level>1</sync-level><prop><getetag/></prop>"
    "</sync-collection>"
)
MULTIGET = (
    '<?xml version="1.0" encoding="utf-8"?><C:calendar-multiget xmlns="DAV:" '
    'xmlns:C="urn:ietf:params:xml:ns:caldav"><prop><getetag/><C:calendar-data/></prop>'
    "{hrefs}</C:calendar-multiget>"
)


@dataclass
class Target:
    """One server as the workload sees it."""

    name: str
    base: str  # http://127.0.0.1:PORT
    calendar: str  # the 10,000-event calendar's path, ending in /
    auth: tuple[str, str] | None
    hrefs: list[str] = field(default_factory=list)

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.base,
            auth=self.auth,
            timeout=600,
            headers={"Content-Type": "application/xml; charset=utf-8"},
        )


def _check(response: httpx.Response, *expected: int) -> httpx.Response:
    if response.status_code not in expected:
        raise RuntimeError(
            f"{response.request.method} {response.request.url} -> {response.status_code}: "
            f"{response.text[:300]}"
        )
    return response


def _token(text: str) -> str:
    start = text.find("sync-token>") + len("sync-token>")
    return text[start : text.find("<", start)]


def _stamp(moment: object) -> str:
    return f"{moment:%Y%m%dT%H%M%SZ}"


def timed(operation: Callable[[], object]) -> float:
    started = time.perf_counter()
    operation()
    return time.perf_counter() - started


def propfind_etags(client: httpx.Client, path: str) -> int:
    response = _check(
        client.request("PROPFIND", path, content=PROPFIND_ETAGS, headers={"Depth": "1"}), 207
    )
    return response.text.count("getetag>") // 2


def operations(target: Target, new_event: Callable[[], Sample]) -> dict[str, Callable[[], object]]:
    """The measured operations; each may run any number of times."""
    client = target.client()
    path = target.calendar
    state: dict[str, str] = {}

    def put() -> None:
        sample = new_event()
        _check(
            client.put(
                f"{path}{sample.href}",
                content=sample.ical(),
                headers={"Content-Type": "text/calendar", "If-None-Match": "*"},
            ),
            201,
        )

    def initial_sync() -> None:
        response = _check(client.request("REPORT", path, content=SYNC.format(token="")), 207)
        state["token"] = _token(response.text)

    def delta_sync() -> None:
        _check(client.request("REPORT", path, content=SYNC.format(token=state["token"])), 207)

    def put_then_token() -> None:
        initial_sync()
        put()

    hrefs = "".join(f"<href>{path}{h}</href>" for h in target.hrefs[:100])
    return {
        "warm PROPFIND Depth 1": lambda: propfind_etags(client, path),
        "one-week calendar-query": lambda: _check(
            client.request(
                "REPORT",
                path,
                headers={"Depth": "1"},
                content=WEEK_QUERY.format(start=_stamp(WEEK[0]), end=_stamp(WEEK[1])),
            ),
            207,
        ),
        "initial sync-collection": initial_sync,
        "PUT one event": put,
        "delta sync after a PUT": delta_sync,
        "getctag + sync-token": lambda: _check(
            client.request("PROPFIND", path, content=PROPFIND_CTAG, headers={"Depth": "0"}), 207
        ),
        "calendar-multiget of 100": lambda: _check(
            client.request(
                "REPORT", path, content=MULTIGET.format(hrefs=hrefs), headers={"Depth": "1"}
            ),
            207,
        ),
        "_prepare delta": put_then_token,
    }


def measure(target: Target, repetitions: int, new_event: Callable[[], Sample]) -> dict[str, float]:
    """Median seconds of each operation over ``repetitions`` runs."""
    ops = operations(target, new_event)
    results: dict[str, float] = {}
    for name, operation in ops.items():
        if name.startswith("_"):
            continue
        samples = []
        for _ in range(repetitions):
            if name == "delta sync after a PUT":
                ops["_prepare delta"]()
            samples.append(timed(operation))
        results[name] = statistics.median(samples)
    return results


def fresh_event_factory(prefix: str) -> Callable[[], Sample]:
    counter = iter(range(10**9))

    def new_event() -> Sample:
        number = next(counter)
        start = WEEK[0] + timedelta(hours=number % 40)
        return Sample(
            f"{prefix}-{uuid.uuid4().hex}",
            f"New meeting {number}",
            "Notes",
            "Office 1",
            start,
            start + timedelta(hours=1),
        )

    return new_event


def concurrency(
    targets: list[Target], clients: int, seconds: float, new_event: Callable[[], Sample]
) -> dict[str, float]:
    """Requests per second of ``clients`` threads running a mixed workload for ``seconds``:
    each loop a getctag, a delta sync and, one time in four, a PUT. Each client takes its
    first sync token before the clock starts."""
    done = [0] * clients
    errors: list[str] = []
    window: dict[str, float] = {}

    def open_window() -> None:  # run once, when every client is ready
        window["started"] = time.monotonic()
        window["deadline"] = window["started"] + seconds

    ready = threading.Barrier(clients + 1, action=open_window)

    def worker(index: int) -> None:
        target = targets[index % len(targets)]
        client = target.client()
        try:
            token = _token(
                _check(
                    client.request("REPORT", target.calendar, content=SYNC.format(token="")), 207
                ).text
            )
        except Exception as exc:
            errors.append(str(exc))
        ready.wait()
        loop = 0
        try:
            while not errors and time.monotonic() < window["deadline"]:
                _check(
                    client.request(
                        "PROPFIND", target.calendar, content=PROPFIND_CTAG, headers={"Depth": "0"}
                    ),
                    207,
                )
                response = _check(
                    client.request("REPORT", target.calendar, content=SYNC.format(token=token)), 207
                )
                token = _token(response.text)
                done[index] += 2
                if loop % 4 == 0:
                    sample = new_event()
                    _check(
                        client.put(
                            f"{target.calendar}{sample.href}",
                            content=sample.ical(),
                            headers={"Content-Type": "text/calendar"},
                        ),
                        201,
                    )
                    done[index] += 1
                loop += 1
        except Exception as exc:  # reported, not hidden: the run fails below
            errors.append(str(exc))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    ready.wait()
    for thread in threads:
        thread.join()
    if errors:
        raise RuntimeError(f"concurrent clients failed: {errors[0]}")
    return {"requests per second": sum(done) / (time.monotonic() - window["started"])}
