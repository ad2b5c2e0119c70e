"""`sysgym kv ...` (old name `sysgym kv-eviction ...`): one policy scored by the evaluator, named errors."""
import json

import pytest

from sysgym.envs.kv_eviction import evaluate_policy
from sysgym.experiments.cli import main


@pytest.mark.parametrize("command", ["kv", "kv-eviction"])
def test_eval_prints_the_evaluators_metrics(command, capsys):
    argv = [command, "eval", "--policy", "tova", "--budget", "16", "--model", "tiny", "--seq-len", "64",
            "--num-sequences", "2", "--params", '{"granularity": "sequence"}']
    assert main(argv) == 0
    printed = json.loads(capsys.readouterr().out)
    direct = evaluate_policy("tova", budget=16, num_sequences=2, seq_len=64, model="tiny", granularity="sequence")
    assert printed == {**direct, "tokens_per_s": printed["tokens_per_s"]}


def test_curve_writes_where_asked(tmp_path, capsys):
    out = tmp_path / "figs"
    assert main(["kv", "curve", "--model", "tiny", "--seq-len", "64", "--num-sequences", "1", "--budgets", "0.25",
                 "--policies", "window,streaming_llm", "--out", str(out)]) == 0
    assert (out / "kv_eviction_curve.png").stat().st_size > 0
    rows = [json.loads(line) for line in (out / "kv_eviction_curve.jsonl").read_text().splitlines()]
    assert [r["label"] for r in rows] == ["window", "streaming_llm"]


def test_unknown_policy_and_bad_params_are_named_errors(capsys):
    assert main(["kv", "eval", "--policy", "lru", "--model", "tiny", "--seq-len", "64"]) == 2
    assert main(["kv", "eval", "--policy", "snapkv", "--params", '{"sinks": 4}', "--model", "tiny"]) == 2
    assert main(["kv", "eval", "--policy", "h2o", "--params", "{oops", "--model", "tiny"]) == 2
    err = " ".join(capsys.readouterr().err.split())  # rich wraps long lines
    assert "unknown kv_eviction policy 'lru'" in err and "sinks" in err and "not JSON" in err
