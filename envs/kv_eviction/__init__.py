"""KV-cache eviction at the token level (H2O, StreamingLLM, TOVA, SnapKV): which cached tokens to drop under a
budget while a real model decodes.

A small causal transformer trained here on the Python standard library's source (no downloads; model.py,
corpus.py, hf.py for a local Hugging Face model) decodes held-out code while a policy evicts. instance.py
(KvInstance, load/save), generator.py (GENERATOR, presets tiny/small/default/bench), simulator.py (the decoder
with eviction and the `TokenPolicy` protocol; `run_policy`), evaluate.py (the only scorer: re-runs the model
with the kept-token mask of every step and reports the loss / perplexity change, top-1 agreement and retained
attention mass), env.py (`sysgym/KvEviction-v0`, `PolicyAgent`), curve.py (budget-vs-perplexity curves). The
policies and the MILP optimum are `kv_eviction.*` solvers in `sysgym.solvers.kv_eviction`.

The session level (which finished turns to keep for a session's next turn) is the `kv_sessions` family;
`sysgym.envs.kv_eviction.sessions` re-exports its API under the old path.

Names are imported lazily (torch loads on first use, not when the family registers). The evaluator is
`sysgym.envs.kv_eviction.evaluate.evaluate` (the module shares its name, so it is not re-exported).
"""
from importlib import import_module

_EXPORTS = {
    "evaluate_policy": "evaluate", "full_attention": "evaluate",
    "budget_tokens": "generator", "generate": "generator", "GENERATOR": "generator", "PRESETS": "generator",
    "KvInstance": "instance", "load": "instance", "save": "instance",
    "CONFIGS": "model", "ModelConfig": "model", "cache_dir": "model", "get_model": "model",
    "TokenPolicy": "simulator", "make_policy": "simulator", "run_policy": "simulator",
    "KvEvictionEnv": "env", "PolicyAgent": "env",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(import_module(f"{__name__}.{_EXPORTS[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
