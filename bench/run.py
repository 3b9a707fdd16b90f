"""One command for the whole benchmark: ``python -m bench.run [--quick]``.

Generates the data sets, starts the bridge, plain Radicale and Xandikos on loopback ports with
the same events, drives the same workload at each, and writes bench/results/latest.{md,json}
and ratios.png.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bench import datasets, report, servers, workload
from bench.datasets import BENCH_PASSWORD, BENCH_USER, WEEK, Sample
from caldav_bridge.db import Database
from caldav_bridge.domain.administration import OPERATOR, Administration
from caldav_bridge.domain.directory import Directory

RESULTS = Path(__file__).parent / "results"


def say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _prepare_bridge(url: str, samples: list[Sample]) -> None:
    database = Database(url)
    database.migrate()
    with database.session(write=True) as session:
        directory = Directory(session)
        owner = directory.add_user(
            BENCH_USER, "Bench User", ["bench@example.com"], BENCH_PASSWORD, "UTC"
        )
        for number in range(1, 21):
            directory.add_user(
                f"att{number:02d}",
                f"Attendee {number}",
                [f"att{number:02d}@example.com"],
                None,
                "UTC",
            )
        directory.add_resource("bench-room", "Bench room", "bench-room@example.com")
        Administration(session, OPERATOR).set_multi_user(True)
        datasets.load_interactions(session, owner, samples)
    database.dispose()


def _postgres_database(admin_url: str) -> str:
    name = f"caldav_bridge_bench_{uuid.uuid4().hex[:8]}"
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def _drop_postgres(admin_url: str, url: str) -> None:
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'))
    engine.dispose()


def _bench_server(
    process: servers.Process,
    target: workload.Target,
    reps: int,
    seconds: float,
    results: dict[str, Any],
) -> None:
    process.start()
    client = target.client()
    say(f"{process.name}: warming up (a first full read)")
    workload.propfind_etags(client, target.calendar)
    say(f"{process.name}: cold PROPFIND, restarting {reps} times")
    cold = []
    for _ in range(reps):
        process.restart()
        with target.client() as fresh:
            cold.append(workload.timed(partial(workload.propfind_etags, fresh, target.calendar)))
    times = {"cold PROPFIND Depth 1": sorted(cold)[len(cold) // 2]}
    say(f"{process.name}: the workload, {reps} repetitions each")
    times.update(workload.measure(target, reps, workload.fresh_event_factory(process.name)))
    say(f"{process.name}: 8 clients for {seconds:g} s")
    rate = workload.concurrency([target], 8, seconds, workload.fresh_event_factory("c"))
    results["concurrency"][f"{process.name}, 1 process"] = rate["requests per second"]
    results["peak_memory_mib"][f"{process.name}, 1 process"] = process.peak_memory_mib()
    results["times"][process.name] = times
    process.stop()


def _scheduling(process: servers.Process, reps: int) -> dict[str, float]:
    """Organizer PUT with 20 attendees and a room, against a plain PUT of the same event."""
    process.start()
    client = httpx.Client(base_url=process.base, auth=(BENCH_USER, BENCH_PASSWORD), timeout=600)
    workload._check(client.request("MKCALENDAR", f"/{BENCH_USER}/personal/"), 201)
    attendees = [f"att{n:02d}@example.com" for n in range(1, 21)] + ["bench-room@example.com"]
    timings: dict[str, list[float]] = {"organizer PUT": [], "plain PUT": []}
    for number in range(reps):
        start = WEEK[0] + timedelta(days=number, hours=1)
        uid = f"sched-{uuid.uuid4().hex}"
        for key, path in (("organizer PUT", "interactions"), ("plain PUT", "personal")):
            # The same event under another UID: one's own calendar refuses a copy of a meeting
            # already in the interactions calendar.
            sample = Sample(
                f"{uid}-{path}",
                "Steering committee",
                "Agenda",
                "",
                start,
                start + timedelta(hours=1),
            )
            body = sample.ical().replace(
                "END:VEVENT",
                "ORGANIZER:mailto:bench@example.com\r\n"
                + "".join(f"ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:{a}\r\n" for a in attendees)
                + "END:VEVENT",
            )
            put = partial(
                client.put,
                f"/{BENCH_USER}/{path}/{sample.href}",
                content=body,
                headers={"Content-Type": "text/calendar"},
            )
            started = time.perf_counter()
            workload._check(put(), 201)
            timings[key].append(time.perf_counter() - started)
    process.stop()
    return {k: sorted(v)[len(v) // 2] for k, v in timings.items()}


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small sizes, about a minute: a smoke check, not a measurement",
    )
    parser.add_argument(
        "--postgres",
        default=os.environ.get(
            "CALDAV_BRIDGE_TEST_POSTGRES_URL",
            "postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
        ),
        help="PostgreSQL server for the multi-process run (a database is created and dropped)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="where to write the results (default bench/results, or a temporary "
        "folder with --quick)",
    )
    return parser.parse_args(argv)


def _peers(
    work: Path,
    bridge_url: str,
    samples: list[Sample],
    crm_samples: list[Sample],
    reps: int,
    seconds: float,
    results: dict[str, Any],
) -> servers.Process:
    """The bridge, Radicale and Xandikos on the same calendar; Radicale is returned for the
    CRM-scale phase."""
    hrefs = [s.href for s in samples[:100]]
    bridge = servers.bridge(work, bridge_url)
    path, auth = f"/{BENCH_USER}/interactions/", (BENCH_USER, BENCH_PASSWORD)
    _bench_server(
        bridge, workload.Target("bridge", bridge.base, path, auth, hrefs), reps, seconds, results
    )
    say("bridge: scheduling PUT against a plain PUT")
    results["scheduling"] = _scheduling(bridge, reps)
    radicale = servers.radicale(work, {"calendar": samples, "crm": crm_samples})
    target = workload.Target("Radicale", radicale.base, f"/{BENCH_USER}/calendar/", auth, hrefs)
    _bench_server(radicale, target, reps, seconds, results)
    xandikos = servers.xandikos(work, samples)
    target = workload.Target("Xandikos", xandikos.base, servers.XANDIKOS_CALENDAR, None, hrefs)
    _bench_server(xandikos, target, reps, seconds, results)
    return radicale


def _crm_scale(
    work: Path,
    crm_url: str,
    radicale: servers.Process,
    reps: int,
    results: dict[str, Any],
) -> None:
    crm_bridge = servers.bridge(work, crm_url, "bridge-crm")
    for process, path, key in (
        (crm_bridge, "/crm0000/interactions/", "bridge"),
        (radicale, f"/{BENCH_USER}/crm/", "Radicale"),
    ):
        login = "crm0000" if key == "bridge" else BENCH_USER
        process.start()
        target = workload.Target(key, process.base, path, (login, BENCH_PASSWORD))
        ops = workload.operations(target, workload.fresh_event_factory("crm"))
        ops["initial sync-collection"]()  # warm-up
        timings = [workload.timed(ops["initial sync-collection"]) for _ in range(reps)]
        results["times"][key]["CRM scale: initial sync of a user's calendar"] = sorted(timings)[
            len(timings) // 2
        ]
        process.stop()


def _two_processes(
    work: Path, admin_url: str, samples: list[Sample], seconds: float, results: dict[str, Any]
) -> None:
    """One and two bridge processes on one PostgreSQL database, under the same load."""
    pg_url = _postgres_database(admin_url)
    try:
        _prepare_bridge(pg_url, samples)
        first, second = (
            servers.bridge(work, pg_url, "bridge-pg-1"),
            servers.bridge(work, pg_url, "bridge-pg-2"),
        )
        auth = (BENCH_USER, BENCH_PASSWORD)
        path = f"/{BENCH_USER}/interactions/"
        first.start()
        one = workload.concurrency(
            [workload.Target("pg1", first.base, path, auth)],
            8,
            seconds,
            workload.fresh_event_factory("pg"),
        )
        results["concurrency"]["bridge on PostgreSQL, 1 process"] = one["requests per second"]
        results["peak_memory_mib"]["bridge on PostgreSQL, 1 process"] = first.peak_memory_mib()
        second.start()
        two = workload.concurrency(
            [
                workload.Target("pg1", first.base, path, auth),
                workload.Target("pg2", second.base, path, auth),
            ],
            8,
            seconds,
            workload.fresh_event_factory("pg"),
        )
        results["concurrency"]["bridge on PostgreSQL, 2 processes"] = two["requests per second"]
        results["peak_memory_mib"]["bridge on PostgreSQL, 2 processes"] = max(
            first.peak_memory_mib(), second.peak_memory_mib()
        )
        first.stop()
        second.stop()
    finally:
        _drop_postgres(admin_url, pg_url)


def main(argv: list[str] | None = None) -> None:
    args = _arguments(argv)
    quick = args.quick
    events, reps, seconds = (300, 3, 2.0) if quick else (10_000, 5, 20.0)
    scale = datasets.CrmScale(40, 400, 4) if quick else datasets.CrmScale(1000, 50_000, 20)
    work = Path(tempfile.mkdtemp(prefix="caldav-bridge-bench-"))
    results: dict[str, Any] = {
        "events": events,
        "cores": os.cpu_count(),
        "quick": quick,
        "times": {},
        "concurrency": {},
        "peak_memory_mib": {},
    }
    started = time.monotonic()
    try:
        say(f"generating {events:,} events")
        samples = datasets.events(events)
        bridge_url = f"sqlite:///{work / 'bridge.sqlite3'}"
        say("loading them into the bridge (through the interaction service)")
        _prepare_bridge(bridge_url, samples)
        say(
            f"CRM scale: {scale.users:,} users, {scale.interactions:,} interactions, "
            f"{scale.rooms} rooms"
        )
        crm_url = f"sqlite:///{work / 'crm.sqlite3'}"
        crm = Database(crm_url)
        crm.migrate()
        crm_samples = datasets.load_crm(crm, scale)
        crm.dispose()
        radicale = _peers(work, bridge_url, samples, crm_samples, reps, seconds, results)
        say(f"CRM scale: one user's calendar ({len(crm_samples):,} events), bridge and Radicale")
        _crm_scale(work, crm_url, radicale, reps, results)
        say("PostgreSQL: the same calendar served by one and by two bridge processes")
        _two_processes(work, args.postgres, samples, seconds, results)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out = args.out or (
        Path(tempfile.mkdtemp(prefix="caldav-bridge-bench-results-")) if quick else RESULTS
    )
    print(report.write(results, out))
    say(f"done in {time.monotonic() - started:.0f} s; results in {out}")


if __name__ == "__main__":
    main()
