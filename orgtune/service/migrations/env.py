"""Alembic environment for the job store: run on the connection `Database.migrate` hands over."""

from alembic import context

from orgtune.service.db import VERSION_TABLE
from orgtune.service.models import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    version_table=VERSION_TABLE,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
