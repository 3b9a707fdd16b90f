"""The Jinja2 templates of the pages (``caldav_bridge/web/templates``), HTML escaped."""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

_TEMPLATES = Environment(
    loader=PackageLoader("caldav_bridge.web", "templates"),
    autoescape=select_autoescape(["html"]),
)


def render(name: str, **context: Any) -> str:
    return _TEMPLATES.get_template(name).render(**context)
