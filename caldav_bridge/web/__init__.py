"""The bridge's own WSGI application under ``/.bridge/`` (``app``): the CRM pages, the RSVP
page, the feeds and the messenger endpoints; no Radicale here."""
