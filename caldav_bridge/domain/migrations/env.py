"""Alembic environment: always run by ``Database.migrate`` on a connection it passes in."""

from alembic import context

from caldav_bridge.domain.models import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
