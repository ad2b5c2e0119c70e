"""The result type every static-family solver returns (DESIGN.md contract 4)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

Status = Literal["optimal", "feasible", "timeout", "infeasible"]
STATUSES = ("optimal", "feasible", "timeout", "infeasible")


@dataclass
class Solution:
    """A method's answer to one instance.

    `decisions` holds the family's decisions (for `vm_resched`: an ordered list of migrations).
    `objective` is what the method *claims*; the family's evaluator recomputes it and tests compare both.
    `bound` is a proven bound on the optimum (minimisation: a lower bound) when the method proves one.
    """

    decisions: Any
    objective: float
    status: Status
    wall_time_s: float
    bound: float | None = None
    gap: float | None = None
    stats: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")
        if self.gap is None and self.bound is not None and self.status != "infeasible":
            self.gap = relative_gap(self.objective, self.bound)

    def solver_stats(self) -> dict[str, Any]:
        """The statistics a result record stores (decisions are kept out: they can be large)."""
        return {"status": self.status, "objective": self.objective, "bound": self.bound, "gap": self.gap,
                "wall_time_s": self.wall_time_s, **self.stats}


def relative_gap(objective: float, bound: float) -> float:
    """|objective - bound| / max(|objective|, 1e-9), 0 when both are 0 (MIP solvers' convention)."""
    if not (math.isfinite(objective) and math.isfinite(bound)):
        return math.inf
    diff = abs(objective - bound)
    if diff <= 1e-12:
        return 0.0
    return diff / max(abs(objective), 1e-9)
