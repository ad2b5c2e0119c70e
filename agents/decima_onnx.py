"""ONNX export of Decima's GNN (`sysgym.agents.decima.DecimaNet`), dynamic in the numbers of stages, edges and jobs.

`export_onnx(net, path, num_limits, meta)` writes one graph of `DecimaNet.core`: inputs `x` (n, node features) of
the real stages, `par`/`chi` (m,) edge endpoints (parent, child) among them, `jobs_of` (n,) each stage's job
slot, `jf` (J, job features), `jmask` (J,), `glob` (global features) -> `node_scores` (n,), `job_limits`
(J, num_limits: the limit head's width, recorded as `head_limits`; the env's levels in "absolute" limit mode,
`len(RELATIVE_CHOICES)` in "relative"), `wait` (). The metadata also records the actor (`stay`, the env's
`num_limits`, `limit_mode`) that `job_sched.agent` rolls the graph out under. The observation's reduction to
real stages (`decima.graph_inputs`, numpy) and the action choice stay outside the graph, as the VM policy's do.
A net that takes a heuristic's choice as input (`decima.TrainConfig.hint`) records it in the metadata's "net";
`OnnxDecimaNet(path)` is a drop-in for the torch net behind `DecimaActor` (greedy decisions), run by onnxruntime,
so the shipped policy also runs without torch's training stack; `python -m sysgym.agents.decima_onnx PT [ONNX]`
exports a trained `decima.pt`.
"""
from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from sysgym.agents.decima import CORE_INPUTS, DecimaNet, graph_inputs, load_net

OPSET = 17
FORMAT = "sysgym-decima-onnx-v1"


class _Core(nn.Module):
    def __init__(self, net: DecimaNet, num_limits: int):
        super().__init__()
        self.net, self.num_limits = net, int(num_limits)

    def forward(self, x, par, chi, jobs_of, jf, jmask, glob):
        return self.net.core(x, par, chi, jobs_of, jf, jmask, glob, self.num_limits)


def _example(net_in: int, job_in: int, glob_in: int):
    """A small DAG (5 stages of 2 jobs, 3 edges) to trace the graph with."""
    return (torch.rand(5, net_in), torch.tensor([0, 0, 3]), torch.tensor([1, 2, 4]), torch.tensor([0, 0, 0, 1, 1]),
            torch.rand(3, job_in), torch.tensor([1.0, 1.0, 0.0]), torch.rand(glob_in))


def export_onnx(net: DecimaNet, path: Path | str, num_limits: int, meta: dict | None = None) -> Path:
    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    net.eval()
    job_in = net.glob[0].in_features - net.prep[-1].out_features
    glob_in = net.wait_score[0].in_features - net.prep[-1].out_features
    ex = _example(net.prep[0].in_features, job_in, glob_in)
    axes = {"x": {0: "stages"}, "par": {0: "edges"}, "chi": {0: "edges"}, "jobs_of": {0: "stages"},
            "jf": {0: "jobs"}, "jmask": {0: "jobs"}, "node_scores": {0: "stages"}, "job_limits": {0: "jobs"}}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(_Core(net, num_limits), ex, str(path), input_names=list(CORE_INPUTS),
                          output_names=["node_scores", "job_limits", "wait"], dynamic_axes=axes,
                          opset_version=OPSET, dynamo=False)
    model = onnx.load(str(path))
    entry = model.metadata_props.add()
    entry.key = "sysgym"
    entry.value = json.dumps({"format": FORMAT, "num_limits": int(num_limits), **(meta or {}),
                              "head_limits": int(num_limits)}, default=str)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


class OnnxDecimaNet:
    """The exported graph behind `DecimaActor` (greedy): `net(obs, num_limits)` returns what `DecimaNet` returns."""

    def __init__(self, path: Path | str):
        import onnx
        import onnxruntime as ort

        meta = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
        self.meta = json.loads(meta.get("sysgym", "{}"))
        if self.meta.get("format") != FORMAT:
            from sysgym.errors import InvalidArgumentError

            raise InvalidArgumentError(f"{path}: not a Decima ONNX graph (format {self.meta.get('format')!r})")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.num_limits = int(self.meta.get("head_limits") or self.meta["num_limits"])  # the limit head's width
        self.hint = (self.meta.get("net") or {}).get("hint")  # the heuristic the actor runs beside it, or None

    def __call__(self, obs: dict[str, np.ndarray], num_limits: int):
        return self.from_graph(graph_inputs(obs), num_limits)

    def from_graph(self, g: dict[str, np.ndarray], num_limits: int):
        """`__call__` on an observation already reduced by `graph_inputs` (as `DecimaNet.from_graph`)."""
        if num_limits != self.num_limits:
            from sysgym.errors import InvalidArgumentError

            raise InvalidArgumentError(f"the graph was exported for {self.num_limits} parallelism limits, the env "
                                       f"has {num_limits}")
        node_scores, job_limits, wait = self.session.run(None, {k: g[k] for k in CORE_INPUTS})
        scores = torch.full((len(g["node_job"]),), -float("inf"))
        scores[torch.as_tensor(g["real"])] = torch.as_tensor(node_scores)
        node_jobs = torch.as_tensor(g["node_job"]).clamp(max=job_limits.shape[0] - 1)
        return scores, torch.as_tensor(job_limits)[node_jobs], torch.as_tensor(wait)


def _env_limits() -> int:
    """The parallelism levels of the env the policy runs in (`decima.make_env`: JobSched-v0's default)."""
    import inspect

    from sysgym.envs.job_sched.env import JobSchedEnv

    return int(inspect.signature(JobSchedEnv.__init__).parameters["num_limits"].default)


def main(argv: list[str] | None = None) -> None:
    """`python -m sysgym.agents.decima_onnx PT [ONNX]`: export a trained Decima net (default: PT's name, .onnx)."""
    args = sys.argv[1:] if argv is None else argv
    if not args:
        raise SystemExit("usage: python -m sysgym.agents.decima_onnx DECIMA.pt [OUT.onnx]")
    net, meta = load_net(args[0])
    out = Path(args[1]) if len(args) > 1 else Path(args[0]).with_suffix(".onnx")
    print(export_run(net, meta, out, Path(args[0]).name))


def export_run(net: DecimaNet, meta: dict, out: Path | str, source: str) -> Path:
    """Export a trained run's net with the metadata `job_sched.agent` follows: the actor's stay rule, the env's
    levels, the limit mode and the net's record (with its hint)."""
    from sysgym.agents.decima import head_limits, limit_mode_of, stay_of

    limits = int(meta.get("config", {}).get("num_limits") or _env_limits())
    mode = limit_mode_of(meta)
    info = {"family": "job_sched", "source": source, "net": meta.get("net"),
            "seed": meta.get("config", {}).get("seed"), "stay": stay_of(meta), "num_limits": limits, "limit_mode": mode}
    return export_onnx(net, out, head_limits(mode, limits), info)


if __name__ == "__main__":
    main()
