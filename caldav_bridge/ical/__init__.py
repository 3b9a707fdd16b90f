"""The iCalendar (and vCard) face of the domain: mapping both ways, iTIP, free-busy, zones."""
