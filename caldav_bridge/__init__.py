"""caldav-bridge: a CRM's interactions as real calendar events.

This package must stay importable without its dependencies: ``caldav_bridge.bootstrap``
runs on the bare system Python to create the virtual environment.
"""

__version__ = "0.1.0"
