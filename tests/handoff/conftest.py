"""The handoff service's tests run on SQLite and PostgreSQL, with the storage tests'
fixtures, against an in-memory collecting front end."""

from tests.storage.conftest import (  # noqa: F401  (fixtures)
    clock,
    db,
    db_url,
    postgres_admin_url,
    postgres_env,
    postgres_url,
    sqlite_template,
    store,
)
