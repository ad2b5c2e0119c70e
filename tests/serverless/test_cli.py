"""`sysgym serverless compare` and `sysgym serverless trace` run and print every method."""
from sysgym.experiments.cli import main
from tests.serverless.conftest import DATA


def test_compare_and_trace(capsys):
    assert main(["serverless", "compare", "--preset", "tiny", "--seeds", "0", "--solvers",
                 "fixed,hybrid,offline,cpsat"]) == 0
    out = capsys.readouterr().out
    assert "hybrid" in out and "cpsat" in out and "gap to bound" in out
    assert main(["serverless", "trace", str(DATA / "azure_invocations_d01.csv"), "--durations",
                 str(DATA / "azure_durations_d01.csv"), "--solvers", "fixed,offline"]) == 0
    assert "3 functions" in capsys.readouterr().out
    assert main(["serverless", "trace", str(DATA / "huawei_cold_starts.csv")]) == 2  # no invocations: named error
