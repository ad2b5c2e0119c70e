"""`sysgym power compare` prints every method; a bad name is a named error (exit status 2)."""
from sysgym.experiments.cli import main


def test_power_compare(capsys):
    assert main(["power", "compare", "--preset", "tiny", "--budget", "0.7", "--solvers", "none,polca,static"]) == 0
    out = capsys.readouterr().out
    assert "polca" in out and "SLO attainment" in out and "1120 W" in out
    assert main(["power", "compare", "--preset", "tiny", "--solvers", "no_such_method"]) == 2
