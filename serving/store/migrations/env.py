"""Alembic environment of the time-bank store.

Run through `serving.store.migrate` (a store opens at head; `python -m serving migrate`), which
hands in the connection to migrate inside its own locked transaction. A plain `alembic` command
line works too, given a config whose `script_location` is this folder and the store's URL as
`-x url=...` or `sqlalchemy.url`; it takes no lock, so run it with the service stopped.
"""

from __future__ import annotations

from alembic import context

from serving.store.engine import make_engine
from serving.store.schema import metadata

config = context.config


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:  # the plain alembic command line
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            _run(conn)
    finally:
        engine.dispose()
