"""sysgym.kernels: the hardware model.

GPU / cluster / model catalogues with sourced numbers, roofline operator and alpha-beta collective
cost models with efficiencies fitted on measured profiles, memory footprints and energy. Just above the
core: it imports only `sysgym.errors`, and every family prices GPU work through it.
"""
from . import models
from .calibration import Calibration, load_calibration
from .collectives import bus_bandwidth_gbps
from .energy import estimate_energy
from .fitting import evaluate_collectives, evaluate_compute, fit_calibration
from .hardware import GPU, Cluster, Link, NodeGroup, get_cluster, get_gpu, list_clusters, list_gpus
from .layer import LAYER_OPS
from .memory import dtype_bytes, kv_bytes_per_token, weight_bytes
from .models import ModelSpec
from .predict import predict_attention_time, predict_collective_time, predict_op_times

__all__ = [
    "GPU", "Calibration", "Cluster", "LAYER_OPS", "Link", "ModelSpec", "bus_bandwidth_gbps", "dtype_bytes",
    "estimate_energy", "evaluate_collectives", "evaluate_compute", "fit_calibration", "get_cluster",
    "get_gpu", "kv_bytes_per_token", "list_clusters", "list_gpus", "load_calibration", "models", "NodeGroup",
    "predict_attention_time", "predict_collective_time", "predict_op_times", "weight_bytes",
]
