"""Email: the outbox delivered as iMIP, and iMIP replies taken in."""
