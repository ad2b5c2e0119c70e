"""The PostgreSQL server fixture of the pg_knobs tests (the old Python API runs on a real server too)."""
from tests.pg_knobs.conftest import pg  # noqa: F401
