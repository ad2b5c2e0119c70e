"""Serverless cold starts (issue 24): keep-alive windows, pre-warming and warm-pool eviction.

instance.py (ServerlessInstance, load/save), generator.py (GENERATOR, presets, the calibration constants and
their sources), traces.py (loaders for the Huawei Public Cloud Trace 2025 and the Azure Functions 2019 trace),
simulator.py (the event simulator and the decision grid), evaluate.py (the only scorer), env.py
(`sysgym/ServerlessKeepAlive-v0`). The online policies and the offline optimum are in `sysgym.solvers.serverless`.
"""
from sysgym.envs.serverless.evaluate import evaluate
from sysgym.envs.serverless.generator import GENERATOR, PRESETS, generate
from sysgym.envs.serverless.instance import COMPONENTS, TRIGGERS, ServerlessInstance, load, save
from sysgym.envs.serverless.simulator import KEEP_ALIVE_MIN, PREWARM_MIN, Request, SimResult, Simulator, simulate
from sysgym.envs.serverless.traces import (
    ColdStartTable,
    load_azure_invocations,
    load_huawei_cold_starts,
    load_huawei_per_minute,
    load_huawei_requests,
    load_trace,
)

__all__ = ["COMPONENTS", "GENERATOR", "KEEP_ALIVE_MIN", "PREWARM_MIN", "PRESETS", "TRIGGERS", "ColdStartTable",
           "Request", "ServerlessInstance", "SimResult", "Simulator", "evaluate", "generate", "load",
           "load_azure_invocations", "load_huawei_cold_starts", "load_huawei_per_minute", "load_huawei_requests",
           "load_trace", "save", "simulate"]
