"""The LLM-serving instance: a request trace plus the serving deployment it runs on.

Generated instances come from `generator.py` (a seeded trace whose lengths are fitted on the Azure LLM
inference 2023 traces); `load(path)` reads a saved instance (`save`, JSON) or wraps a trace file (Azure or
BurstGPT CSV) on a given deployment.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sysgym.envs.llm_serving.metrics import DEFAULT_SLO_TPOT_S, DEFAULT_SLO_TTFT_S
from sysgym.envs.llm_serving.traces import FORMATS, Trace, load_trace
from sysgym.errors import InvalidInstanceError, TraceFormatError, UnknownNameError
from sysgym.instances import InstanceBase, digest_of, read_json, require_fields

FORMAT = "sysgym.llm_serving.instance/1"
DEPLOY_FIELDS = ("model", "gpu", "tp", "pp", "num_replicas", "router", "block_size", "max_tokens",
                 "memory_semantics", "num_blocks", "max_num_seqs", "slo_ttft_s", "slo_tpot_s")
TRACE_FIELDS = ("arrival", "prompt", "output")


@dataclass(frozen=True, eq=False)
class ServingInstance(InstanceBase):
    """A trace and a deployment. `name` is the replayable spec; `simulate_kwargs()` feeds `simulate`."""

    FORMAT = FORMAT

    trace: Trace
    model: str = "llama-2-7b"
    gpu: str = "a100-80gb"
    tp: int = 1
    pp: int = 1
    num_replicas: int = 1
    router: str = "round_robin"
    block_size: int = 16
    max_tokens: int | None = None
    memory_semantics: str = "vllm"
    num_blocks: int | None = None  # override of the planned KV blocks per replica (small experiments)
    max_num_seqs: int | None = None  # batch cap every scheduler keeps (None: each scheduler's default)
    slo_ttft_s: float = DEFAULT_SLO_TTFT_S
    slo_tpot_s: float = DEFAULT_SLO_TPOT_S
    name: str = "llm_serving/custom"

    def simulate_kwargs(self) -> dict[str, Any]:
        return {"model": self.model, "gpu": self.gpu, "tp": self.tp, "pp": self.pp,
                "num_replicas": self.num_replicas, "router": self.router, "block_size": self.block_size,
                "max_tokens": self.max_tokens, "memory_semantics": self.memory_semantics,
                "num_blocks": self.num_blocks, "slo_ttft_s": self.slo_ttft_s, "slo_tpot_s": self.slo_tpot_s,
                **({"max_num_seqs": self.max_num_seqs} if self.max_num_seqs is not None else {})}

    @property
    def num_requests(self) -> int:
        return len(self.trace)

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "trace": self.trace.to_dict(), **self.simulate_kwargs(), "name": self.name}

    def digest(self) -> str:
        """The deployment and the trace's own digest (not the whole JSON: a trace is large, and every digest
        written before the family kit was computed this way)."""
        return digest_of({**self.simulate_kwargs(), "trace": self.trace.digest()})

    def with_(self, **changes) -> ServingInstance:
        return replace(self, **changes)


def from_dict(data: Any, path: str | os.PathLike = "<data>") -> ServingInstance:
    """The instance `to_dict()` wrote; malformed data raises TraceFormatError naming the field."""
    require_fields(data, ("trace", "name"), path)
    require_fields(data["trace"], TRACE_FIELDS, path, "instance trace")
    tr = data["trace"]
    unknown = sorted(set(data) - {"format", "trace", "name", *DEPLOY_FIELDS})
    if unknown:
        raise TraceFormatError(f"{path}: unknown instance field(s) {unknown}")
    try:
        trace = Trace(tr["arrival"], tr["prompt"], tr["output"], tr.get("client"), tr.get("session"),
                      tr.get("priority"), name=str(tr.get("name", "trace")),
                      client_names=tuple(tr.get("client_names") or ()))
        return ServingInstance(trace=trace, name=str(data["name"]), **{k: data[k] for k in DEPLOY_FIELDS if k in data})
    except InvalidInstanceError:
        raise
    except (TypeError, ValueError, OverflowError) as exc:
        raise TraceFormatError(f"{path}: malformed instance field ({exc})") from None


def load(path: str | os.PathLike, format: str = "auto", **deploy: Any) -> ServingInstance:  # noqa: A002
    """A saved instance (`inst.save(path)`, JSON), or an instance replaying a trace file on the deployment
    `deploy` (fields of `ServingInstance`). `format`: ``"auto"`` (a JSON file is a saved instance, anything
    else an Azure CSV), ``"instance"``, or a trace format (``"azure"``, ``"burstgpt"``)."""
    known = ("auto", "instance", *FORMATS)
    if format not in known:
        raise UnknownNameError("llm_serving file format", format, known)
    path = Path(path)
    if format == "auto":
        format = "instance" if path.suffix.lower() == ".json" else "azure"  # noqa: A001
    if format == "instance":
        if deploy:
            raise TraceFormatError(f"{path}: a saved instance carries its deployment; drop {sorted(deploy)}")
        data = read_json(path)
        if isinstance(data, dict) and data.get("format", FORMAT) != FORMAT:
            raise TraceFormatError(f"{path}: format {data.get('format')!r} is not {FORMAT!r}")
        return from_dict(data, path)
    bad = sorted(set(deploy) - set(DEPLOY_FIELDS))
    if bad:
        raise UnknownNameError("deployment field", bad[0], DEPLOY_FIELDS)
    return ServingInstance(trace=load_trace(path, format=format), name=f"llm_serving/file:{path}", **deploy)
