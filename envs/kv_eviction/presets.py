"""Generator presets (torch-free, so registering the family does not import torch).

Sequence lengths and the 20 % budget follow H2O's headline setting (Zhang et al., NeurIPS 2023: "20 %
heavy hitters" = a KV budget of 20 % of the sequence); see generator.py.
"""
from typing import Any

PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {"model": "tiny", "num_sequences": 2, "seq_len": 64, "budget": 0.25},
    "small": {"model": "default", "num_sequences": 2, "seq_len": 128, "budget": 0.2},
    "default": {"model": "default", "num_sequences": 8, "seq_len": 256, "budget": 0.2},
    "bench": {"model": "default", "num_sequences": 64, "seq_len": 512, "budget": 0.2},
}
