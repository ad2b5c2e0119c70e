"""Serverless keep-alive methods; importing registers them (`serverless.fixed`, `.no_keepalive`, `.hybrid`,
`.greedy_dual`, `.offline`, `.cpsat`)."""
from sysgym.solvers.serverless import offline, policies  # noqa: F401
