"""The PostgreSQL family's errors: a server that cannot be found, started or driven; a failed pgbench; a knob value
the server (or the knob space) does not accept."""
from __future__ import annotations

from sysgym.errors import SysgymError


class PostgresError(SysgymError, RuntimeError):
    """The server could not be found, started, or driven."""


class PgbenchError(PostgresError):
    """pgbench failed (the message carries its output)."""


class KnobValueError(SysgymError, ValueError):
    """A knob value the server (or the chosen knob space) does not accept; names the allowed range."""

