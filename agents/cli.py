"""`sysgym train ...`, `sysgym tune-agent ...` (Hydra overrides follow) and `sysgym export RUN_DIR`."""
from __future__ import annotations

import argparse
import sys


def _cmd_train(args: argparse.Namespace) -> int:
    from sysgym.agents.apps import train_main

    sys.argv = ["sysgym train", *args.overrides]
    train_main()
    return 0


def _cmd_tune(args: argparse.Namespace) -> int:
    from sysgym.agents.apps import tune_main

    sys.argv = ["sysgym tune-agent", *args.overrides]
    tune_main()
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from rich.console import Console

    from sysgym.agents.exporting import export

    out = export(args.run_dir, args.format, args.output, which=args.which)
    Console().print(f"exported {args.which} policy of {args.run_dir} as {args.format} -> {out}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("train", help="train an RL agent (Hydra: env=... agent=... seed=... hydra.run.dir=...)",
                       add_help=False, prefix_chars="\0")
    p.add_argument("overrides", nargs=argparse.REMAINDER)
    # hydra_config: `sysgym`'s dispatcher checks the overrides against this config before the command runs
    p.set_defaults(func=_cmd_train, hydra_config="train")
    p = sub.add_parser("tune-agent", help="tune an agent's hyperparameters with Optuna (Hydra overrides follow)",
                       add_help=False, prefix_chars="\0")
    p.add_argument("overrides", nargs=argparse.REMAINDER)
    p.set_defaults(func=_cmd_tune, hydra_config="train")
    p = sub.add_parser("export", help="export a trained policy (ONNX or TorchScript)")
    p.add_argument("run_dir", help="a run directory of `sysgym train` (or an SB3 .zip)")
    p.add_argument("--format", choices=("onnx", "torchscript"), default="onnx")
    p.add_argument("--output", "-o", default=None, help="output file (default: beside the model)")
    p.add_argument("--which", choices=("final", "best"), default="final", help="final model.zip or best_model.zip")
    p.set_defaults(func=_cmd_export)
