"""`sysgym kv-sessions compare` and its old name `sysgym kv-eviction sessions` print the same comparison."""
from sysgym.experiments.cli import main


def _table(capsys, argv):
    assert main(argv) == 0
    return capsys.readouterr().out.splitlines()


def test_old_and_new_commands_agree(capsys, tmp_path):
    new = _table(capsys, ["kv-sessions", "compare", "--preset", "tiny", "--seed", "1", "--plot",
                          str(tmp_path / "s.png")])
    old = _table(capsys, ["kv-eviction", "sessions", "--preset", "tiny", "--seed", "1"])
    assert new[1:-1] == old[1:]  # the same rows; only the first prints the plot's path
    assert new[0].split(";")[0] == old[0].split(";")[0]  # the heads differ only in CP-SAT's wall time
    assert (tmp_path / "s.png").stat().st_size > 0
    rows = {line.split()[0] for line in new[2:-1]}
    assert rows == {"none", "lru", "lfu", "ttl", "continuum", "prefix", "belady", "cpsat"}


def test_overrides_and_named_errors(capsys):
    out = _table(capsys, ["kv-sessions", "compare", "--preset", "tiny", "--kind", "chat", "--num-sessions", "3",
                          "--solvers", "lru"])
    assert out[0].startswith(f"{out[0].split()[0]} turns of 3 chat sessions, pool 4000 tokens")
    assert main(["kv-sessions", "compare", "--preset", "huge"]) == 2
    assert main(["kv-sessions", "compare", "--preset", "tiny", "--solvers", "fifo"]) == 2
    err = " ".join(capsys.readouterr().err.split())  # rich wraps long lines
    assert "unknown kv_sessions preset 'huge'" in err and "unknown solver 'kv_sessions.fifo'" in err
