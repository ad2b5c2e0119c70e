"""Power-capping methods; importing registers them (`power_cap.polca`, `.none`, `.static`, `.lookahead`)."""
from sysgym.solvers.power_cap import policies  # noqa: F401
