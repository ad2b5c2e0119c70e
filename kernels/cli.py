"""`sysgym calibrate` and `sysgym profile`: register(subparsers) adds both to the main CLI."""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from .hardware import GPU, get_gpu


def _device(profiles: Path, name: str | None) -> tuple[GPU, str | None]:
    """A catalogue GPU, or the measured spec in profiles/device.json (written by `profile`)."""
    spec_file = profiles / "device.json"
    if spec_file.is_file():
        spec = json.loads(spec_file.read_text(encoding="utf-8"))
        if name is None or name == spec.get("name"):
            return GPU.from_dict(spec["name"], spec), spec.get("dtype")
    if name is None:
        raise SystemExit(f"--gpu is required: {spec_file} does not exist")
    return get_gpu(name), None


def _calibrate(args: argparse.Namespace) -> int:
    from .fitting import fit_calibration

    profiles = Path(args.profiles)
    try:
        gpu, measured_dtype = _device(profiles, args.gpu)
    except KeyError as exc:
        print(f"error: {exc.args[0]}", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else Path(f"calibration_{gpu.name}.json")
    command = "sysgym calibrate " + " ".join(shlex.quote(a) for a in args.argv) if args.argv else ""
    try:
        cal = fit_calibration(profiles, gpu, dtype=args.dtype or measured_dtype or "fp16", models=args.models,
                              cluster=args.cluster, kinds=args.kinds, command=command, source=args.source, out=out)
    except (FileNotFoundError, ValueError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"calibration for {gpu.name} written to {out}")
    for op, mape in sorted(cal.mape.items()):
        print(f"  {op:26s} MAPE {mape:6.2f} %")
    return 0


def _profile(args: argparse.Namespace) -> int:
    from .profiler import run_profile

    try:
        out = run_profile(args.out, device=args.device, quick=args.quick, threads=args.threads)
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"profiles written to {out} (compute/, attention/, device.json); "
          f"fit them with: sysgym calibrate --profiles {out}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    cal = subparsers.add_parser("calibrate", help="fit the hardware model's efficiencies on operator profiles")
    cal.add_argument("--profiles", required=True, help="folder with compute/*.csv and/or network/*.csv")
    cal.add_argument("--gpu", default=None,
                     help="catalogue GPU the profiles were measured on (default: the folder's device.json)")
    cal.add_argument("--out", default=None, help="calibration JSON to write")
    cal.add_argument("--dtype", default=None, help="dtype of the profiles (default fp16, or device.json's)")
    cal.add_argument("--models", nargs="+", default=None, help="fit only these compute/<name>.csv files")
    cal.add_argument("--source", default="", help="where the profiles come from (kept in the provenance)")
    cal.add_argument("--kinds", nargs="+", default=None, choices=("compute", "attention", "network"),
                     help="fit only these profile kinds (default: every kind the folder has)")
    cal.add_argument("--cluster", default="vidur-a100-dgx",
                     help="cluster preset network/*.csv was measured on; the fitted network terms are stored under "
                          "its inter-node link name (default vidur-a100-dgx, vidur's profiled cluster)")
    cal.set_defaults(func=lambda a: _calibrate(_with_argv(a, "calibrate")))

    prof = subparsers.add_parser("profile", help="measure operator times on this machine with torch")
    prof.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    prof.add_argument("--out", required=True, help="folder to write the profiles into")
    prof.add_argument("--quick", action="store_true", help="fewer shapes and repetitions")
    prof.add_argument("--threads", type=int, default=None, help="CPU: torch threads while timing (default: up to 2; "
                      "1 is steadier on a shared machine)")
    prof.set_defaults(func=_profile)


def _with_argv(args: argparse.Namespace, command: str) -> argparse.Namespace:
    if not hasattr(args, "argv"):
        argv = sys.argv[1:]
        args.argv = argv[argv.index(command) + 1:] if command in argv else []
    return args
