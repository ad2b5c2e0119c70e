"""KV-cache eviction (H2O, StreamingLLM, TOVA, SnapKV): which cached tokens to drop under a budget.

Token level: a small causal transformer trained here on the Python standard library's source (no
downloads) decodes held-out code while a policy evicts; the evaluator re-runs the model with the kept-token
mask of every step and reports the loss / perplexity change, top-1 agreement and retained attention mass.

Names are imported lazily (torch loads on first use, not when the family registers). The evaluator is
`sysgym.envs.kv_eviction.evaluate.evaluate` (the module shares its name, so it is not re-exported).
"""
from importlib import import_module

_EXPORTS = {
    "evaluate_policy": "evaluate", "full_attention": "evaluate",
    "budget_tokens": "generator", "generate": "generator", "PRESETS": "presets",
    "KvInstance": "instance", "load": "instance", "save": "instance",
    "CONFIGS": "model", "ModelConfig": "model", "cache_dir": "model", "get_model": "model",
    "POLICIES": "policies", "TokenPolicy": "policies", "h2o_keep": "policies", "make_policy": "policies",
    "streaming_llm_keep": "policies", "run_policy": "simulate", "KvEvictionEnv": "env",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(import_module(f"{__name__}.{_EXPORTS[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
