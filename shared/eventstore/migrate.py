"""Schema versions of the event store: Alembic migrations run on an open engine (no alembic.ini).

``upgrade(engine)`` brings a database, empty or older, to the newest schema (``head()``);
``current(engine)`` says where it stands. ``vigil record --upgrade-db`` runs the upgrade and exits,
and ``vigil record`` runs it at start (``record.upgrade_db``); a reader (``vigil web``) opens the
store with ``upgrade=False`` and is refused a schema other than ``head()``.

A schema change is a new file in ``migrations/versions`` (``revision`` and ``down_revision``
chained to the newest one) and the same change in ``schema.py``: the tests run the migrations on
an empty database and compare the result with ``schema.py``.
"""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

MIGRATIONS = Path(__file__).with_name("migrations")
logging.getLogger("alembic").setLevel(logging.WARNING)  # a line per step at INFO; the store logs the upgrade


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head() -> str:
    """The newest schema revision this build knows."""
    revision = ScriptDirectory.from_config(_config()).get_current_head()
    assert revision is not None, "no migrations shipped"
    return revision


def current(engine: Engine) -> str | None:
    """The database's schema revision (None: an empty database, or one Alembic never touched)."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Migrate to ``head()``; returns (the revision before, the revision now). Safe to run again."""
    before = current(engine)
    config = _config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
    return before, head()
