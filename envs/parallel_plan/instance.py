"""`PlanInstance`: a model, a cluster, a sequence length, a global batch and a per-GPU memory budget; its file
format (`save`/`load`).

The presets and the generator live in `generator.py`. A saved instance holds the model's shape and the
cluster's GPU and links in full (not only their `sysgym.kernels` names), so it replays even where the kernels'
catalogue has changed; a heterogeneous cluster's node groups and the link between them, NICs per node and
`overlap_grad_reduce` are written only when they are set, so instances without them keep their files (and
digests).
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any

from sysgym import kernels
from sysgym.errors import InvalidInstanceError, TraceFormatError
from sysgym.instances import InstanceBase, read_json, require_fields
from sysgym.kernels.hardware import GPU, Cluster, Link, NodeGroup
from sysgym.kernels.models import ModelSpec

FORMAT = "sysgym.parallel_plan.instance/1"


@dataclass(frozen=True, eq=False)
class PlanInstance(InstanceBase):
    """One planning problem. `model` / `cluster` accept `sysgym.kernels` names or objects."""

    FORMAT = FORMAT

    model: ModelSpec | str
    cluster: Cluster | str
    seq_len: int
    global_batch: int
    memory_limit_gib: float | None = None
    flash_attention: bool = False
    name: str = "parallel_plan/custom"
    overlap_grad_reduce: bool = False  # Megatron-Core's bucketed gradient reduction during the last backward

    def __post_init__(self) -> None:
        object.__setattr__(self, "model", kernels.models.get(self.model))
        object.__setattr__(self, "cluster", kernels.get_cluster(self.cluster))
        for key in ("seq_len", "global_batch"):
            value = getattr(self, key)
            if isinstance(value, bool) or int(value) != value or value < 1:
                raise InvalidInstanceError(f"{self.name}: {key} must be a positive integer, got {value!r}")
            object.__setattr__(self, key, int(value))
        if self.memory_limit_gib is not None and not self.memory_limit_gib > 0:
            raise InvalidInstanceError(f"{self.name}: memory_limit_gib must be positive, got {self.memory_limit_gib}")

    @property
    def num_gpus(self) -> int:
        return self.cluster.num_gpus

    def estimate(self, plan, **kwargs):
        """`estimate_training` of a plan on this instance."""
        from sysgym.envs.parallel_plan.cost import estimate_training

        return estimate_training(self.model, self.cluster, plan, seq_len=self.seq_len,
                                 global_batch=self.global_batch, memory_limit_gib=self.memory_limit_gib,
                                 flash_attention=self.flash_attention, overlap_grad_reduce=self.overlap_grad_reduce,
                                 **kwargs)

    def cost_model(self):
        from sysgym.envs.parallel_plan.cost import cost_model

        return cost_model(self.model, self.cluster, self.seq_len, flash_attention=self.flash_attention,
                          overlap_grad_reduce=self.overlap_grad_reduce)

    def to_dict(self) -> dict[str, Any]:
        c = self.cluster
        cluster = {"gpu": c.gpu.to_dict(), "num_nodes": c.num_nodes, "gpus_per_node": c.gpus_per_node,
                   "intra_node": dataclasses.asdict(c.intra_node), "inter_node": dataclasses.asdict(c.inter_node),
                   "name": c.name}
        if c.nics != c.gpus_per_node:
            cluster["nics_per_node"] = c.nics
        if c.node_groups:
            cluster["node_groups"] = [g.to_dict() for g in c.node_groups]
        if c.cross_group is not None:
            cluster["cross_group"] = dataclasses.asdict(c.cross_group)
        out = {"format": FORMAT, "name": self.name, "model": dataclasses.asdict(self.model), "cluster": cluster,
               "seq_len": self.seq_len, "global_batch": self.global_batch,
               "memory_limit_gib": self.memory_limit_gib, "flash_attention": self.flash_attention}
        if self.overlap_grad_reduce:
            out["overlap_grad_reduce"] = True
        return out


def load(path: str | os.PathLike) -> PlanInstance:
    """Load a saved parallel-plan instance (`PlanInstance.save`); a malformed file names the field."""
    data = read_json(path)
    require_fields(data, ("format",), path)
    if data["format"] != FORMAT:
        raise TraceFormatError(f"{path}: not a parallel-plan instance (format {data['format']!r}, "
                               f"expected {FORMAT!r})")
    require_fields(data, ("model", "cluster", "seq_len", "global_batch"), path)
    model = _build(ModelSpec, data["model"], path, "model")
    cdata = data["cluster"]
    require_fields(cdata, ("gpu", "num_nodes", "gpus_per_node", "intra_node", "inter_node"), path, "instance cluster")
    unknown = sorted(set(cdata) - {"gpu", "num_nodes", "gpus_per_node", "intra_node", "inter_node", "name",
                                   "nics_per_node", "node_groups", "cross_group"})
    if unknown:
        raise TraceFormatError(f"{path}: field 'cluster' has unknown key(s) {unknown}")
    cluster_fields = {"num_nodes": cdata["num_nodes"], "gpus_per_node": cdata["gpus_per_node"],
                      "intra_node": _build(Link, cdata["intra_node"], path, "cluster.intra_node"),
                      "inter_node": _build(Link, cdata["inter_node"], path, "cluster.inter_node"),
                      "name": cdata.get("name", ""), "nics_per_node": cdata.get("nics_per_node")}
    groups = cdata.get("node_groups") or []
    if not isinstance(groups, list):
        raise TraceFormatError(f"{path}: field 'cluster.node_groups' must be a list, got {type(groups).__name__}")
    built = []
    for j, g in enumerate(groups):
        if isinstance(g, dict) and "inter_node" in g:
            g = {**g, "inter_node": _build(Link, g["inter_node"], path, f"cluster.node_groups[{j}].inter_node")}
        built.append(_build(NodeGroup, g, path, f"cluster.node_groups[{j}]"))
    cluster_fields["node_groups"] = tuple(built)
    if cdata.get("cross_group") is not None:
        cluster_fields["cross_group"] = _build(Link, cdata["cross_group"], path, "cluster.cross_group")
    gpu = _build(GPU, cdata["gpu"], path, "cluster.gpu")
    cluster = _build(Cluster, {"gpu": gpu, **cluster_fields}, path, "cluster")
    for key in ("seq_len", "global_batch"):
        if isinstance(data[key], bool) or not isinstance(data[key], int):
            raise TraceFormatError(f"{path}: field {key!r} must be an integer, got {data[key]!r}")
    limit = data.get("memory_limit_gib")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, (int, float))):
        raise TraceFormatError(f"{path}: field 'memory_limit_gib' must be a number or null, got {limit!r}")
    flags = {}
    for key in ("flash_attention", "overlap_grad_reduce"):
        flags[key] = data.get(key, False)
        if not isinstance(flags[key], bool):
            raise TraceFormatError(f"{path}: field {key!r} must be true or false, got {flags[key]!r}")
    return PlanInstance(model=model, cluster=cluster, seq_len=data["seq_len"], global_batch=data["global_batch"],
                        memory_limit_gib=limit, name=data.get("name") or f"parallel_plan/file:{path}", **flags)


def _build(cls: type, fields: Any, path: str | os.PathLike, what: str):
    """`cls(**fields)` for one part of a saved instance; anything wrong names the field."""
    if not isinstance(fields, dict):
        raise TraceFormatError(f"{path}: field {what!r} must be an object, got {type(fields).__name__}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise TraceFormatError(f"{path}: field {what!r} has unknown key(s) {unknown}")
    try:
        return cls(**fields)
    except TypeError as exc:  # a required key is missing
        raise TraceFormatError(f"{path}: field {what!r}: {exc}") from None
    except (ValueError, ZeroDivisionError) as exc:
        raise TraceFormatError(f"{path}: field {what!r}: {exc}") from None
