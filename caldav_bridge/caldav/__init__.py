"""CalDAV and CardDAV: one thin layer over Radicale's WSGI application."""
