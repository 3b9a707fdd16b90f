"""The side-by-side report: a Markdown table, JSON, and a bar chart of the ratios."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

# Operation → the ratio (peer time / bridge time against plain Radicale) the bridge must reach.
TARGETS = {
    "cold PROPFIND Depth 1": 20.0,
    "PUT one event": 30.0,
    "delta sync after a PUT": 30.0,
    "getctag + sync-token": 50.0,
    "one-week calendar-query": 3.0,
    "initial sync-collection": 3.0,
    "CRM scale: initial sync of a user's calendar": 1.0,
}


def _ms(seconds: float | None) -> str:
    return "–" if seconds is None else f"{seconds * 1000:.1f} ms"


def _ratio(peer: float | None, bridge: float | None) -> float | None:
    if peer is None or not bridge:
        return None
    return peer / bridge


def _x(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}x"


def table(results: dict[str, Any]) -> str:
    times = results["times"]
    bridge, radicale, xandikos = (times[k] for k in ("bridge", "Radicale", "Xandikos"))
    lines = [
        "| operation | bridge | Radicale | Radicale / bridge | target | Xandikos "
        "| Xandikos / bridge |",
        "|---|---|---|---|---|---|---|",
    ]
    for operation in bridge:
        ratio = _ratio(radicale.get(operation), bridge[operation])
        target = TARGETS.get(operation)
        verdict = ""
        if target is not None and ratio is not None:
            verdict = f"≥ {target:g}x {'met' if ratio >= target else '**missed**'}"
        lines.append(
            f"| {operation} | {_ms(bridge[operation])} | {_ms(radicale.get(operation))} | "
            f"{_x(ratio)} | {verdict} | {_ms(xandikos.get(operation))} | "
            f"{_x(_ratio(xandikos.get(operation), bridge[operation]))} |"
        )
    memory = results["peak_memory_mib"]
    lines += [
        "",
        "| server | peak memory (VmHWM; the busiest process) | 8 clients, requests/s |",
        "|---|---|---|",
    ]
    for name, rate in results["concurrency"].items():
        lines.append(f"| {name} | {memory.get(name, float('nan')):.0f} MiB | {rate:.0f} |")
    scheduling = results["scheduling"]
    lines += [
        "",
        f"Organizer PUT with 20 attendees and a room: {_ms(scheduling['organizer PUT'])}, "
        f"plain PUT of the same event into a personal calendar: {_ms(scheduling['plain PUT'])} "
        f"(ratio {scheduling['organizer PUT'] / scheduling['plain PUT']:.1f}x, target at most 3x).",
    ]
    return "\n".join(lines)


def chart(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    times = results["times"]
    operations = list(times["bridge"])
    figure, axis = plt.subplots(figsize=(10, 5.5))
    width = 0.38
    for offset, peer in ((-width / 2, "Radicale"), (width / 2, "Xandikos")):
        ratios = [_ratio(times[peer].get(op), times["bridge"][op]) or 0.0 for op in operations]
        axis.bar([i + offset for i in range(len(operations))], ratios, width, label=peer)
    for index, operation in enumerate(operations):
        if operation in TARGETS:
            axis.hlines(
                TARGETS[operation], index - 0.45, index + 0.45, colors="black", linestyles="dashed"
            )
    axis.set_yscale("log")
    axis.axhline(1.0, color="grey", linewidth=0.8)
    axis.set_xticks(range(len(operations)), operations, rotation=30, ha="right", fontsize=8)
    axis.set_ylabel("peer time / bridge time (log scale; dashed: target)")
    axis.set_title(
        f"caldav-bridge vs peers, {results['events']:,} events ({results['cores']} cores)"
    )
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def write(results: dict[str, Any], folder: Path) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    text = table(results)
    (folder / "latest.md").write_text(text + "\n", encoding="utf-8")
    (folder / "latest.json").write_text(
        json.dumps(results, indent=2, default=lambda v: None if math.isnan(v) else v) + "\n"
    )
    chart(results, folder / "ratios.png")
    return text
