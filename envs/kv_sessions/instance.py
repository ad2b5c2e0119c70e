"""The session-level KV-retention instance: a multi-turn workload and the size of the retention pool.

Turns are sorted by arrival. Turn `i` of session `session[i]` arrives at `arrival[i]`, adds `new_input[i]`
tokens to the `ctx_before[i]` tokens of context it extends (the session's system prompt plus its earlier
turns), generates `output[i]` tokens and ends at `end[i]`; `gap_kind[i]` says what follows it (a tool call's
name, "user" think time, or "" after a session's last turn). Sessions of one prefix `group` share a system
prompt of `prefix_tokens`. Between two turns the finished context may wait in a pool of `capacity` tokens.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sysgym.errors import InvalidInstanceError, TraceFormatError
from sysgym.instances import InstanceBase, read_json, require_fields

FORMAT = "sysgym.kv_sessions.workload/1"
_INT_COLUMNS = ("session", "turn", "new_input", "output", "ctx_before", "group")
_FLOAT_COLUMNS = ("arrival", "end")
FIELDS = (*_INT_COLUMNS, *_FLOAT_COLUMNS, "gap_kind", "prefix_tokens", "capacity")


@dataclass(frozen=True, eq=False)
class SessionWorkload(InstanceBase):
    """Immutable workload (see the module doc); `name` is its replayable spec."""

    FORMAT = FORMAT

    session: np.ndarray
    turn: np.ndarray
    arrival: np.ndarray
    end: np.ndarray
    new_input: np.ndarray
    output: np.ndarray
    ctx_before: np.ndarray
    gap_kind: tuple[str, ...]  # what follows turn i: a tool name, "user", or "" (last turn)
    group: np.ndarray  # prefix group of the session of turn i
    prefix_tokens: int
    capacity: int  # tokens of the retention pool
    name: str = "kv_sessions/custom"

    def __post_init__(self) -> None:
        for key in _INT_COLUMNS:
            arr = np.array(getattr(self, key), np.int64)
            arr.setflags(write=False)
            object.__setattr__(self, key, arr)
        for key in _FLOAT_COLUMNS:
            arr = np.array(getattr(self, key), np.float64)
            arr.setflags(write=False)
            object.__setattr__(self, key, arr)
        object.__setattr__(self, "gap_kind", tuple(str(k) for k in self.gap_kind))
        object.__setattr__(self, "prefix_tokens", int(self.prefix_tokens))
        object.__setattr__(self, "capacity", int(self.capacity))
        n = len(self.arrival)
        for key in (*_INT_COLUMNS, *_FLOAT_COLUMNS, "gap_kind"):
            if len(getattr(self, key)) != n:
                raise InvalidInstanceError(f"{self.name}: column {key} has {len(getattr(self, key))} entries, "
                                           f"arrival has {n}")
        if n == 0:
            raise InvalidInstanceError(f"{self.name}: a workload needs at least one turn")
        if (np.diff(self.arrival) < 0).any():
            raise InvalidInstanceError(f"{self.name}: turns must be sorted by arrival")
        if (self.end < self.arrival).any():
            raise InvalidInstanceError(f"{self.name}: turn {int(np.argmax(self.end < self.arrival))} ends before it "
                                       "arrives")
        if (self.new_input < 0).any() or (self.output < 0).any() or (self.ctx_before < 0).any():
            raise InvalidInstanceError(f"{self.name}: token counts must be >= 0")
        if self.capacity < 0:
            raise InvalidInstanceError(f"{self.name}: capacity must be >= 0, got {self.capacity}")

    @property
    def num_turns(self) -> int:
        return len(self.arrival)

    @property
    def num_sessions(self) -> int:
        return len(np.unique(self.session))

    def ctx_after(self, i: int) -> int:
        """Tokens of context after turn i: what its session's next turn extends."""
        return int(self.ctx_before[i] + self.new_input[i] + self.output[i])

    def next_turn(self) -> np.ndarray:
        """Index of the same session's next turn (-1 for the last)."""
        nxt = np.full(self.num_turns, -1, np.int64)
        last: dict[int, int] = {}
        for i in range(self.num_turns - 1, -1, -1):
            s = int(self.session[i])
            nxt[i] = last.get(s, -1)
            last[s] = i
        return nxt

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"format": FORMAT, "name": self.name}
        for key in (*_INT_COLUMNS, *_FLOAT_COLUMNS):
            out[key] = getattr(self, key).tolist()
        out.update(gap_kind=list(self.gap_kind), prefix_tokens=self.prefix_tokens, capacity=self.capacity)
        return out


def save(inst: SessionWorkload, path: str | Path) -> Path:
    return inst.save(path)


def load(path: str | Path) -> SessionWorkload:
    """Load a saved sysgym session workload (JSON, format `sysgym.kv_sessions.workload/1`)."""
    data = read_json(path, "session workload")
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise TraceFormatError(f"{path}: not a kv_sessions workload (format {FORMAT!r})")
    require_fields(data, FIELDS, path, "session workload")
    try:
        return SessionWorkload(**{k: data[k] for k in FIELDS}, name=data.get("name", f"kv_sessions/file:{path}"))
    except (TypeError, ValueError, OverflowError) as exc:
        if isinstance(exc, InvalidInstanceError):
            raise
        raise TraceFormatError(f"{path}: malformed workload field ({exc})") from None
