"""The bridge's own pages under ``/.bridge/``: CRM pages, RSVP, feeds."""
