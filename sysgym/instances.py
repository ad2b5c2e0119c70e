"""The instance contract every family keeps, and the one IO path instances are saved and loaded through.

An instance is an immutable problem (a dataclass of numpy arrays, or a trace) with

* `name`: its replayable spec (`sysgym.specs`), e.g. `vm_resched/small?seed=3`;
* `to_dict()`: plain JSON data (with a `format` key naming the family's file format and its version);
* `digest()`: a short hash of `to_dict()`; records store it, so `sysgym validate` can tell an instance rebuilt
  from its spec is the one the method solved;
* `save(path)`: the JSON file that the family's `load(path)` reads back.

`InstanceBase` gives `digest` and `save` from `to_dict`, so a family writes only `to_dict` and a `from_dict`.
`read_json` is the shared reader: a missing file, bytes that are not UTF-8 or text that is not JSON each give
an error naming the file.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

from sysgym.errors import SysgymError, TraceFormatError
from sysgym.fileio import write_json_atomic
from sysgym.specs import format_spec, parse_spec  # noqa: F401  (re-exported: older imports)


@runtime_checkable
class Instance(Protocol):
    """What the shared machinery (runner, validate, envs, agents) may rely on for any family's instance."""

    name: str

    def to_dict(self) -> dict[str, Any]: ...

    def digest(self) -> str: ...

    def save(self, path: str | os.PathLike) -> Path: ...


def digest_of(data: Any) -> str:
    """The 16-hex-digit digest of JSON data (sorted keys): the same function for every family."""
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


class InstanceBase:
    """Mixin for instance dataclasses: `digest()` and `save()` from the family's `to_dict()`."""

    FORMAT: ClassVar[str] = ""  # e.g. "sysgym.vm_resched.instance/1": written by to_dict, checked by load

    def to_dict(self) -> dict[str, Any]:  # pragma: no cover - every family defines it
        raise NotImplementedError

    def digest(self) -> str:
        return digest_of(self.to_dict())

    def save(self, path: str | os.PathLike) -> Path:
        return save(self, path)


def save(instance: Instance, path: str | os.PathLike) -> Path:
    """Write `instance.to_dict()` as JSON, atomically (a crash never leaves half a file)."""
    return write_json_atomic(path, instance.to_dict())


def read_text(path: str | os.PathLike, what: str = "trace") -> str:
    """A text file's contents; a directory, a missing file or bytes that are not UTF-8 give errors naming the
    file (FileNotFoundError stays itself). The one reader behind every family's JSON, CSV and trace loaders."""
    path = Path(path)
    if path.is_dir():
        raise TraceFormatError(f"{path}: is a directory, not a {what} file")
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"no {what} file at {path}") from None
    try:
        return raw.decode("utf-8-sig")  # UTF-8, and a leading byte-order mark (spreadsheet exports) is dropped
    except UnicodeDecodeError as exc:
        raise TraceFormatError(f"{path}: not UTF-8 text (byte {exc.start}); is it a {what} file?") from None


def read_json(path: str | os.PathLike, what: str = "instance") -> Any:
    """Parse a JSON file; errors name the file (FileNotFoundError stays itself)."""
    try:
        text = read_text(path, f"JSON {what}")
    except FileNotFoundError:
        raise FileNotFoundError(f"no {what} file at {path}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise TraceFormatError(f"{path}:{exc.lineno}: not a JSON {what} ({exc.msg})") from None


def require_fields(data: Any, fields: tuple[str, ...], path: str | os.PathLike, what: str = "instance") -> None:
    """A JSON object with every one of `fields`, or a TraceFormatError naming the first missing one."""
    if not isinstance(data, dict):
        raise TraceFormatError(f"{path}: a JSON {what} is an object, got {type(data).__name__}")
    for key in fields:
        if key not in data:
            raise TraceFormatError(f"{path}: {what} lacks field {key!r}")


def from_spec(spec: str) -> Any:
    """Rebuild the instance a spec names (`sysgym.instance(...)`); errors name the unknown part."""
    from sysgym.registry import get_family, resolve_family_alias
    from sysgym.specs import parse

    s = parse(spec)
    family = get_family(resolve_family_alias(s.family, s.preset))
    if s.is_file:
        if family.load is None:
            raise SysgymError(f"family {family.name!r} cannot load instances from files")
        return family.load(s.path)
    return family.generator(seed=0 if s.seed is None else s.seed, preset=s.preset, version=s.version, **s.params)
