"""Radicale rights plugin: who may read and write what.

- a user reads and writes their own home (their interactions calendar, their calendars and
  address books), and reads their address book of colleagues and rooms (the CRM's directory);
- other users' calendars are free-busy only;
- rooms and other resources: their home and bookings calendar are readable by every user;
- anonymous requests get nothing (Radicale answers 401).
"""

from __future__ import annotations

from typing import Any

from radicale import pathutils, rights
from sqlalchemy import select

from caldav_bridge.caldav import paths
from caldav_bridge.caldav.server import settings_of, shared_database
from caldav_bridge.domain.models import Resource, User


class Rights(rights.BaseRights):
    def __init__(self, configuration: Any) -> None:
        super().__init__(configuration)
        self.database = shared_database(settings_of(configuration).database_url)

    def authorization(self, user: str, user_groups: set[str], path: str) -> str:
        if not user:
            return ""
        place = paths.Place.of(pathutils.sanitize_path(path))
        if not place.parts:
            return "R"
        if place.home == user:
            if place.is_principal or place.child == paths.OUTBOX:  # folders, not calendars
                return "RW"
            return "r" if place.in_directory else "rw"
        if place.in_schedule_box:
            return ""  # nobody else reads a user's schedule inbox or posts to their outbox
        with self.database.session() as session:
            if session.scalar(select(Resource.id).where(Resource.slug == place.home)):
                return "R" if place.is_principal else "r"
            if session.scalar(select(User.id).where(User.login == place.home)):
                return "R" if place.is_principal else "f"
        return ""
