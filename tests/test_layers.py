"""The tree is the architecture (DESIGN.md section 5): each layer imports only what is below it.
The domain imports no Radicale, template, mail-server or adapter code; the iCalendar face, the
CalDAV layer, email and the web pages import no layer beside them."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "caldav_bridge"

# What each layer may not import (module names, and their submodules).
FORBIDDEN = {
    "domain": (
        "radicale",
        "jinja2",
        "aiosmtpd",
        "plugins",
        "caldav_bridge.caldav",
        "caldav_bridge.web",
        "caldav_bridge.mail",
        "caldav_bridge.cli",
    ),
    "ical": (
        "radicale",
        "plugins",
        "caldav_bridge.caldav",
        "caldav_bridge.web",
        "caldav_bridge.mail",
        "caldav_bridge.cli",
    ),
    "caldav": ("caldav_bridge.web", "caldav_bridge.mail", "caldav_bridge.cli"),
    "mail": (
        "radicale",
        "plugins",
        "caldav_bridge.caldav",
        "caldav_bridge.web",
        "caldav_bridge.cli",
    ),
    "web": (
        "radicale",
        "plugins",
        "caldav_bridge.caldav",
        "caldav_bridge.mail",
        "caldav_bridge.cli",
    ),
}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_a_layer_imports_nothing_beside_or_above_it(layer: str) -> None:
    found = []
    for path in sorted((PACKAGE / layer).rglob("*.py")):
        for name in sorted(_imports(path)):
            if any(name == bad or name.startswith(f"{bad}.") for bad in FORBIDDEN[layer]):
                found.append(f"{path.relative_to(PACKAGE)} imports {name}")
    assert not found, "\n".join(found)


def test_no_module_is_larger_than_the_layout_allows() -> None:
    """Small modules (migrations aside): about 500 lines at most."""
    large = [
        f"{path.relative_to(PACKAGE.parent)}: {lines} lines"
        for path in sorted([*PACKAGE.rglob("*.py"), *(PACKAGE.parent / "plugins").rglob("*.py")])
        if "migrations" not in path.parts
        and (lines := len(path.read_text(encoding="utf-8").splitlines())) > 520
    ]
    assert not large, "\n".join(large)
