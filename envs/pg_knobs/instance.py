"""A PostgreSQL knob-tuning instance: which knobs, which pgbench workload, which measurement protocol, what budget.

It is a black-box problem: the instance holds no model of PostgreSQL, only what to measure and how.
The seed drives pgbench's own random streams (`--random-seed`), so a run is as repeatable as a real
server allows; the noise that is left is exposed as the spread of repeated runs.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any

from sysgym.errors import InvalidInstanceError, TraceFormatError, UnknownNameError
from sysgym.instances import InstanceBase, read_json, require_fields

from .knobs import SUBSETS

# The file format keeps its name from before the family split (knob_tuning -> pg_knobs), so saved instances
# still load and the digests of their dicts are unchanged.
FORMAT = "sysgym.knob_tuning.instance/1"


@dataclass(frozen=True)
class PgInstance(InstanceBase):
    """pgbench on a fresh server: knobs to tune, workload, measurement protocol and trial budget."""

    FORMAT = FORMAT

    knobs: str = "pgbench-core"  # a knob subset (knobs.SUBSETS)
    scale: int = 5  # pgbench -s (16 MB of data per unit)
    clients: int = 4  # pgbench -c
    duration_s: int = 3  # one measured run, seconds (pgbench -T)
    repetitions: int = 2  # measured runs per trial (mean and spread)
    warmup_s: int = 1  # an unmeasured run after applying a configuration (cache warm-up)
    read_only: bool = False  # pgbench -S (select-only) instead of TPC-B-like
    trials: int = 30  # the tuning budget every method gets
    final_repetitions: int = 3  # runs of the incumbent's final re-measurement
    seed: int = 0  # pgbench --random-seed base
    name: str = "pg_knobs/custom"

    def __post_init__(self) -> None:
        if self.knobs not in SUBSETS:
            raise UnknownNameError("knob subset", self.knobs, SUBSETS)
        for key in ("scale", "clients", "duration_s", "repetitions", "trials", "final_repetitions"):
            if int(getattr(self, key)) < 1:
                raise InvalidInstanceError(f"{self.name}: {key} must be >= 1, got {getattr(self, key)}")
        if self.warmup_s < 0:
            raise InvalidInstanceError(f"{self.name}: warmup_s must be >= 0, got {self.warmup_s}")

    def protocol(self) -> dict[str, Any]:
        return {"scale": self.scale, "clients": self.clients, "duration_s": self.duration_s,
                "repetitions": self.repetitions, "warmup_s": self.warmup_s, "read_only": self.read_only}

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, **asdict(self)}


FIELDS = tuple(f for f in PgInstance.__dataclass_fields__)


def load(path: str | os.PathLike) -> PgInstance:
    """A PostgreSQL knob-tuning instance saved with `instance.save(path)`."""
    data = read_json(path)
    require_fields(data, ("format", "knobs"), path)
    if data["format"] != FORMAT:
        raise TraceFormatError(f"{path}: not a pg_knobs instance (format {data['format']!r}, expected {FORMAT!r})")
    unknown = sorted(set(data) - {"format", *FIELDS})
    if unknown:
        raise TraceFormatError(f"{path}: unknown field(s) {', '.join(unknown)} in a pg_knobs instance")
    return PgInstance(**{k: v for k, v in data.items() if k != "format"})
