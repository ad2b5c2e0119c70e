"""`sysgym pg tune` (and its old name `sysgym tune-pg`) end to end, and Ctrl-C cleanup of a server started by a
separate process."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sysgym.envs.pg_knobs.ports import port_in_use
from sysgym.experiments.cli import main


def test_pg_tune_prints_diff_and_writes_conf_fragment(pg, tmp_path, capsys):
    out = tmp_path / "best.conf"
    rc = main(["pg", "tune", "--knobs", "tiny", "--trials", "2", "--scale", "1", "--clients", "2", "--duration", "1",
               "--repetitions", "1", "--warmup", "0", "--final-repetitions", "1", "--quiet", "--out", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "PostgreSQL 18" in text and "3 knobs from subset 'tiny'" in text
    assert "gain" in text and "95 % CI" in text and "tps at the defaults" in text
    frag = out.read_text()
    assert frag.startswith("# sysgym pg tune: tpe on tiny, 2 trials")
    for line in frag.splitlines()[2:]:  # every setting line names its default and whether it needs a restart
        assert " = '" in line and "# default " in line and ("needs restart" in line or "needs reload" in line)


@pytest.mark.parametrize("command", [["pg", "tune"], ["tune-pg"]])
def test_pg_tune_refuses_unknown_subset(pg, capsys, command):
    assert main([*command, "--knobs", "everything", "--trials", "1", "--quiet"]) == 2
    assert "unknown knob subset 'everything'" in capsys.readouterr().out


def test_old_command_name_takes_the_same_flags():
    from sysgym.experiments.cli import build_parser

    parser = build_parser()
    flags = ["--knobs", "tiny", "--trials", "2", "--method", "cmaes", "--scale", "1", "--clients", "2", "--duration",
             "1", "--repetitions", "1", "--warmup", "0", "--final-repetitions", "1", "--read-only", "--seed", "3",
             "--bin-dir", "/x", "--out", "o.conf", "--json", "o.json", "--quiet"]
    new, old = vars(parser.parse_args(["pg", "tune", *flags])), vars(parser.parse_args(["tune-pg", *flags]))
    assert {k: v for k, v in new.items() if k not in ("command", "pg_command")} == \
        {k: v for k, v in old.items() if k != "command"}


def test_piped_output_has_no_runs_of_blank_lines(pg):
    proc = subprocess.run([sys.executable, "-m", "sysgym.experiments.cli", "pg", "tune", "--knobs", "tiny", "--trials",
                           "2", "--scale", "1", "--clients", "2", "--duration", "1", "--repetitions", "1", "--warmup",
                           "0", "--final-repetitions", "1", "--method", "random", "--seed", "1"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "\n\n\n" not in proc.stdout and "tps at the defaults" in proc.stdout


def test_ctrl_c_stops_and_removes_the_server(pg):
    script = ("import time\nfrom sysgym.envs.pg_knobs import PostgresServer\n"
              "with PostgresServer() as s:\n    print(s.tmpdir, s.port, flush=True)\n    time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        tmpdir, port = proc.stdout.readline().split()
        assert Path(tmpdir).is_dir() and port_in_use(int(port))
        os.kill(proc.pid, signal.SIGINT)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (Path(tmpdir).exists() or port_in_use(int(port))):
        time.sleep(0.1)
    assert not Path(tmpdir).exists(), "data directory left behind after Ctrl-C"
    assert not port_in_use(int(port)), "port still in use after Ctrl-C"


@pytest.mark.slow
def test_owner_killed_with_sigkill_still_cleans_up(pg):
    script = ("import time\nfrom sysgym.envs.pg_knobs import PostgresServer\n"
              "s = PostgresServer()\ns.start()\nprint(s.tmpdir, s.port, flush=True)\ntime.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        tmpdir, port = proc.stdout.readline().split()
        proc.kill()  # no exit handlers run: the detached watchdog must stop the server
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (Path(tmpdir).exists() or port_in_use(int(port))):
        time.sleep(0.2)
    assert not Path(tmpdir).exists() and not port_in_use(int(port))
