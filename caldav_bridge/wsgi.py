"""The WSGI application (CalDAV, and the web app at ``/.bridge/``: ``dispatcher``), for running
several server processes on one PostgreSQL database:

    CALDAV_BRIDGE_DATABASE_URL=postgresql+psycopg://… gunicorn -w 4 -b 127.0.0.1:5232 \\
        caldav_bridge.wsgi:application

Settings come from the environment and the configuration file as for the CLI. Every process
keeps its state in the database, so any process can answer any request.
"""

from __future__ import annotations

from caldav_bridge.caldav.server import application as _application
from caldav_bridge.caldav.server import radicale_configuration
from caldav_bridge.config import load_settings

application = _application(radicale_configuration(load_settings()))
