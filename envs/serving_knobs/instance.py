"""A serving-knob instance: an LLM-serving workload (an `llm_serving` preset, overrides and a seed) whose engine
knobs are tuned, and the trial budget. The workload is rebuilt from these fields through the LLM-serving
simulator's public API (`sysgym.envs.llm_serving.generate`), deterministically in the seed.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any

from sysgym.errors import InvalidInstanceError, TraceFormatError, UnknownNameError
from sysgym.instances import InstanceBase, read_json, require_fields

# The file format keeps its name from before the family split (knob_tuning -> serving_knobs): the digests of
# instances made from specs written then (`knob_tuning/serving?seed=0`) must not change, so records validate.
FORMAT = "sysgym.knob_tuning.serving_instance/1"


@dataclass(frozen=True)
class ServingKnobInstance(InstanceBase):
    """An LLM-serving workload (an `llm_serving` preset + overrides + seed) whose engine knobs are tuned."""

    FORMAT = FORMAT

    serving_preset: str = "overload"
    serving_params: dict[str, Any] = field(default_factory=dict)
    serving_seed: int = 0
    trials: int = 30
    name: str = "serving_knobs/custom"

    def __post_init__(self) -> None:
        from sysgym.envs.llm_serving import PRESETS as SERVING_PRESETS

        if self.serving_preset not in SERVING_PRESETS:
            raise UnknownNameError("llm_serving preset", self.serving_preset, SERVING_PRESETS)
        if self.trials < 1:
            raise InvalidInstanceError(f"{self.name}: trials must be >= 1, got {self.trials}")

    def serving_instance(self):
        """The `llm_serving` instance (trace + deployment); deterministic in the seed."""
        cache = self.__dict__.get("_serving")
        if cache is None:
            from sysgym.envs.llm_serving import generate as serving_generate

            cache = serving_generate(seed=self.serving_seed, preset=self.serving_preset, **self.serving_params)
            object.__setattr__(self, "_serving", cache)
        return cache

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, **asdict(self)}


FIELDS = tuple(ServingKnobInstance.__dataclass_fields__)


def load(path: str | os.PathLike) -> ServingKnobInstance:
    """A serving-knob instance saved with `instance.save(path)`."""
    data = read_json(path)
    require_fields(data, ("format", "serving_preset"), path)
    if data["format"] != FORMAT:
        raise TraceFormatError(f"{path}: not a serving_knobs instance (format {data['format']!r}, "
                               f"expected {FORMAT!r})")
    unknown = sorted(set(data) - {"format", *FIELDS})
    if unknown:
        raise TraceFormatError(f"{path}: unknown field(s) {', '.join(unknown)} in a serving_knobs instance")
    return ServingKnobInstance(**{k: v for k, v in data.items() if k != "format"})
