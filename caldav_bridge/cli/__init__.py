"""The ``caldav-bridge`` command, its tables, the demo data, the interoperability runs."""
