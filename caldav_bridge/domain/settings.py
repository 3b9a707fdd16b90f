"""CRM-wide settings stored in the ``settings`` table."""

from __future__ import annotations

from sqlalchemy.orm import Session

from caldav_bridge.domain.models import Setting

MULTI_USER = "multi_user_interactions"


def get_flag(session: Session, key: str, default: bool = False) -> bool:
    row = session.get(Setting, key)
    return default if row is None else row.value == "on"


def set_flag(session: Session, key: str, enabled: bool) -> None:
    row = session.get(Setting, key)
    value = "on" if enabled else "off"
    if row is None:
        session.add(Setting(key=key, value=value))
    else:
        row.value = value
