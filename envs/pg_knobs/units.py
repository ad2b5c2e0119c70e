"""PostgreSQL knob values: units (memory in kB, time in ms), conversion of numbers and strings with explicit
units, and the check of one value against its `pg_settings` row (type, enum values, range)."""
from __future__ import annotations

import re
from typing import Any

from .errors import KnobValueError

# PostgreSQL's memory units in kB and time units in ms (postgresql.org/docs/18/config-setting.html).
MEMORY_UNITS_KB = {"B": 1 / 1024, "kB": 1, "8kB": 8, "16kB": 16, "32kB": 32, "MB": 1024, "GB": 1024**2, "TB": 1024**3}
TIME_UNITS_MS = {"us": 1e-3, "ms": 1, "s": 1000, "min": 60_000, "h": 3_600_000, "d": 86_400_000}
_VALUE_UNIT = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def unit_scale(unit: str | None) -> tuple[str, float] | None:
    """('memory', kB per unit) or ('time', ms per unit) for a pg_settings unit, None when unitless."""
    if not unit:
        return None
    m = re.match(r"^(\d*)([a-zA-Z]+)$", unit)
    if not m:
        raise KnobValueError(f"unrecognised PostgreSQL unit {unit!r}")
    mult, base = int(m.group(1) or 1), m.group(2)
    if base in MEMORY_UNITS_KB:
        return "memory", mult * MEMORY_UNITS_KB[base]
    if base in TIME_UNITS_MS:
        return "time", mult * TIME_UNITS_MS[base]
    raise KnobValueError(f"unrecognised PostgreSQL unit {unit!r}")


def to_base_units(name: str, value: Any, unit: str | None) -> float:
    """A number in the knob's own unit (pg_settings.unit) from a number (already in that unit) or a string
    with an explicit unit, e.g. shared_buffers '128MB' -> 16384 (8 kB pages)."""
    if isinstance(value, bool):
        raise KnobValueError(f"{name}: expected a number, got {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    m = _VALUE_UNIT.match(str(value))
    if not m:
        raise KnobValueError(f"{name}: cannot read {value!r} as a number with an optional unit")
    number, given = float(m.group(1)), m.group(2)
    if not given:
        return number
    own = unit_scale(unit)
    if own is None:
        raise KnobValueError(f"{name}: takes no unit, got {value!r}")
    if given in MEMORY_UNITS_KB and own[0] == "memory":
        return number * MEMORY_UNITS_KB[given] / own[1]
    if given in TIME_UNITS_MS and own[0] == "time":
        return number * TIME_UNITS_MS[given] / own[1]
    raise KnobValueError(f"{name}: unit {given!r} does not fit this knob (its unit is {unit!r})")


def format_with_unit(value: float, unit: str | None, vartype: str) -> str:
    """The setting string with an explicit unit: shared_buffers 16384 (8 kB pages) -> '131072kB'."""
    if vartype == "integer":
        value = int(round(value))
    scale = unit_scale(unit)
    if scale is None or value < 0:  # -1 and friends are special values, written bare
        return str(value) if vartype == "integer" else repr(float(value))
    kind, factor = scale
    if kind == "memory":
        if vartype == "integer":
            kb = value * factor
            if kb == int(kb) and kb >= 1:
                return f"{int(kb)}kB"
            return f"{int(round(value * factor * 1024))}B"
        return f"{value * factor}kB"
    ms = value * factor
    if vartype == "integer" and float(ms).is_integer():
        return f"{int(ms)}ms"
    return f"{ms}ms" if ms >= 1 else f"{ms * 1000}us"


def check_value(name: str, value: Any, meta: dict[str, Any], bounds: tuple[float, float] | None = None) -> str:
    """Validate one knob value against its pg_settings row; returns the setting string (explicit unit)."""
    vartype = meta["vartype"]
    if vartype == "bool":
        if isinstance(value, bool):
            return "on" if value else "off"
        text = str(value).strip().lower()
        if text in ("on", "true", "yes", "1"):
            return "on"
        if text in ("off", "false", "no", "0"):
            return "off"
        raise KnobValueError(f"{name}: {value!r} is not a boolean (allowed: on, off)")
    if vartype == "enum":
        allowed = meta["enumvals"] or []
        text = str(value).strip()
        if text not in allowed:
            raise KnobValueError(f"{name}: {value!r} is not allowed (allowed: {', '.join(allowed)})")
        return text
    if vartype == "string":
        return str(value)
    number = to_base_units(name, value, meta["unit"])
    if vartype == "integer" and isinstance(value, str) and _VALUE_UNIT.match(value).group(2):
        number = float(round(number))  # like PostgreSQL: a value with a unit rounds to the knob's unit
    if vartype == "integer" and not float(number).is_integer():
        raise KnobValueError(f"{name}: {value!r} is not a whole number of {meta['unit'] or 'units'}")
    lo, hi = meta["min"], meta["max"]
    if bounds is not None:
        lo, hi = max(lo, bounds[0]), min(hi, bounds[1])
    if not lo <= number <= hi:
        unit = f" {meta['unit']}" if meta["unit"] else ""
        raise KnobValueError(f"{name}: {value!r} is out of range: allowed {_num(lo)}..{_num(hi)}{unit}")
    return format_with_unit(number, meta["unit"], vartype)


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(x)
