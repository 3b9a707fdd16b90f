"""The Jinja2 templates of the emails and pages (``caldav_bridge/templates``), HTML escaped."""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

_TEMPLATES = Environment(
    loader=PackageLoader("caldav_bridge", "templates"),
    autoescape=select_autoescape(["html"]),
)


def render(name: str, **context: Any) -> str:
    return _TEMPLATES.get_template(name).render(**context)
