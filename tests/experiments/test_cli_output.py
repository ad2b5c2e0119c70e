"""The first hour: help that describes each command, and piped output without runs of blank lines."""
import sys

from sysgym.experiments.cli import main


def _blank_runs(text: str) -> list[int]:
    lines, out, run = text.split("\n"), [], 0
    for i, line in enumerate(lines, 1):
        run = run + 1 if not line.strip() else 0
        if run == 2:
            out.append(i)
    return out


def _call(argv, capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["sysgym", *argv])
    try:
        code = main(argv)
    except SystemExit as exc:  # Hydra's --help exits
        code = exc.code or 0
    cap = capsys.readouterr()
    return code, cap.out + cap.err


HELPS = {
    "run": "sysgym run: one instance x one method x one seed -> one result record",
    "train": "sysgym train: train a stable-baselines3 / sb3-contrib agent",
    "tune-agent": "sysgym tune-agent: tune the agent's search_space with Optuna",
}


def test_the_hydra_commands_describe_themselves():
    """`--help` of the three Hydra apps, piped (one interpreter: Hydra apps are best run outside pytest's
    capture, as a user runs them)."""
    import subprocess

    code = ("import sys\nfrom sysgym.experiments.cli import main\n"
            "for cmd in sys.argv[1:]:\n"
            "    print(f'=== {cmd}', flush=True)\n"
            "    try:\n        main([cmd, '--help'])\n    except SystemExit:\n        pass\n    sys.stdout.flush()\n")
    proc = subprocess.run([sys.executable, "-c", code, *HELPS], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    parts = dict(p.split("\n", 1) for p in proc.stdout.split("=== ")[1:])
    for cmd, describes in HELPS.items():
        out = parts[cmd]
        assert describes in out and "powered by Hydra" not in out, (cmd, out[:500])
        assert not _blank_runs(out), (cmd, _blank_runs(out))


def test_piped_output_has_no_runs_of_blank_lines(tmp_path, capsys, monkeypatch):
    from hydra import compose, initialize_config_module

    from sysgym.experiments.runner import run_from_config

    with initialize_config_module("sysgym.conf", version_base="1.3"):
        for solver in ("vm_resched.greedy", "vm_resched.random"):
            run_from_config(compose("config", overrides=["env=vm_resched_tiny", f"solver={solver}",
                                                         f"results_dir={tmp_path}"]))
    for argv in (["list"], ["datasets"], ["datasets", "azure-conv-2023"], ["validate", str(tmp_path)],
                 ["leaderboard", str(tmp_path)], ["leaderboard", str(tmp_path), "--format", "markdown"],
                 ["leaderboard", str(tmp_path), "--format", "csv"], ["--help"],
                 ["bench", "--family", "vm_resched", "--tier", "tiny", "--dry-run", "--results-dir", str(tmp_path)]):
        code, out = _call(argv, capsys, monkeypatch)
        assert code == 0, (argv, out[-2000:])
        assert not _blank_runs(out), (argv, _blank_runs(out), out[:3000])
