"""Fixtures of the experiments tests."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture
def read_only_run():
    """`run(folder, argv, *more_argvs)`: sysgym CLI commands (one interpreter, in order; the exit status is the
    last one's) with `folder` read-only. chmod for a normal user; for root (who ignores file modes), a read-only
    bind mount in a private user+mount namespace (`unshare -rm`)."""

    def run(folder: Path, argv: list[str], *more: list[str]) -> subprocess.CompletedProcess:
        code = ("import json, sys\nfrom sysgym.experiments.cli import main\nrc = 0\n"
                "for argv in json.loads(sys.argv[1]):\n    rc = main(argv)\n    sys.stdout.flush()\n"
                "sys.exit(rc)\n")
        cli = [sys.executable, "-c", code, json.dumps([argv, *more])]
        if os.geteuid() != 0:
            folder.chmod(0o555)
            try:
                return subprocess.run(cli, capture_output=True, text=True, timeout=300)
            finally:
                folder.chmod(0o755)
        if shutil.which("unshare") is None or subprocess.run(["unshare", "-rm", "true"],
                                                              capture_output=True).returncode:
            pytest.skip("cannot make a read-only folder here: running as root without user namespaces (unshare -rm)")
        script = 'mount --bind -o ro "$1" "$1" && shift && exec "$@"'
        return subprocess.run(["unshare", "-rm", "sh", "-c", script, "sh", str(folder), *cli],
                              capture_output=True, text=True, timeout=300)

    return run
