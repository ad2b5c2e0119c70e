"""`sysgym plan` (experiments/commands/plan.py): the table, the Pareto plot, named errors."""


def test_cli_plan_table_plot_and_errors(tmp_path, capsys):
    from sysgym.experiments.cli import main

    png = tmp_path / "front.png"
    rc = main(["plan", "--model", "llama-2-7b", "--cluster", "dgx-a100", "--nodes", "2", "--seq-len", "4096",
               "--global-batch", "128", "--top", "4", "--plot", str(png)])
    out = capsys.readouterr().out
    assert rc == 0 and "best plans" in out and "why it loses" in out and png.stat().st_size > 10_000
    assert "\n\n" not in out  # piped output has no blank lines
    assert main(["plan", "--model", "nope", "--seq-len", "8", "--global-batch", "8"]) == 2
    assert "known models" in capsys.readouterr().err
    assert main(["plan", "--model", "gpt-1t", "--nodes", "1", "--seq-len", "2048", "--global-batch", "8"]) == 1
    assert "no feasible plan" in capsys.readouterr().err
