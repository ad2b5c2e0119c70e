"""Measures operator times on the local device with torch and writes vidur-format profiles.

Output folder: compute/<shape>.csv (the layer's linear and element-wise ops over num_tokens and tp),
attention/<shape>.csv (prefill and decode attention) and device.json (a roofline spec of the device:
measured matmul FLOP/s and copy bandwidth, so `calibrate` can fit efficiencies relative to it).
Tensor parallelism is emulated as vidur does: one device runs the tp-sliced shapes.
"""
from __future__ import annotations

import csv
import json
import os
import statistics
import time
from pathlib import Path

from .models import ModelSpec

# Small shapes keep a CPU run to seconds; `--quick` trims the sweep further.
CPU_SHAPES = {
    "tiny-512": ModelSpec(hidden_size=512, ffn_hidden_size=1408, num_layers=1, num_heads=8, num_kv_heads=8,
                          vocab_size=8192),
    "tiny-768": ModelSpec(hidden_size=768, ffn_hidden_size=2048, num_layers=1, num_heads=12, num_kv_heads=4,
                          vocab_size=8192),
}
GPU_SHAPES = {"llama-2-7b-shape": ModelSpec(hidden_size=4096, ffn_hidden_size=11008, num_layers=1, num_heads=32,
                                            num_kv_heads=32, vocab_size=32768)}


def _timer(torch, device: str):
    def measure(fn, reps: int) -> dict:
        fn()  # warm-up: allocations, kernel selection
        samples = []
        for _ in range(reps):
            if device == "cuda":
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                fn()
                end.record()
                torch.cuda.synchronize()
                samples.append(start.elapsed_time(end))
            else:
                t0 = time.perf_counter()
                fn()
                samples.append((time.perf_counter() - t0) * 1e3)
        return {"min": min(samples), "max": max(samples), "mean": statistics.fmean(samples),
                "median": statistics.median(samples), "std": statistics.pstdev(samples)}
    return measure


def _layer_ops(torch, spec: ModelSpec, tokens: int, tp: int, dtype, device):
    """Closures running each operator of one layer at (tokens, tp) on random tensors."""
    f = torch.nn.functional
    h, hd = spec.hidden_size, spec.head_dim
    heads, kv_heads = spec.num_heads // tp, max(1, spec.num_kv_heads // tp)
    ffn = spec.ffn_hidden_size // tp
    new = dict(dtype=dtype, device=device)
    x = torch.randn(tokens, h, **new)
    w_qkv = torch.randn((heads + 2 * kv_heads) * hd, h, **new)
    w_o = torch.randn(h, heads * hd, **new)
    w_up = torch.randn(2 * ffn, h, **new)
    w_down = torch.randn(h, ffn, **new)
    gate_up = torch.randn(tokens, 2 * ffn, **new)
    qk = torch.randn(tokens, heads + kv_heads, hd, **new)
    cos = torch.randn(tokens, 1, hd // 2, **new)
    norm_w = torch.ones(h, **new)
    ids = torch.randint(0, spec.vocab_size // tp, (tokens,), device=device)
    table = torch.randn(spec.vocab_size // tp, h, **new)

    def rms_norm():
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * norm_w

    def rope():
        a, b = qk[..., : hd // 2], qk[..., hd // 2:]
        return torch.cat((a * cos - b * cos, b * cos + a * cos), dim=-1)

    def act():
        g, u = gate_up.chunk(2, dim=-1)
        return f.silu(g) * u

    return {
        "emb": lambda: f.embedding(ids, table),
        "input_layernorm": rms_norm,
        "attn_pre_proj": lambda: f.linear(x, w_qkv),
        "attn_rope": rope,
        "attn_post_proj": lambda: f.linear(x[:, : heads * hd], w_o),
        "post_attention_layernorm": rms_norm,
        "mlp_up_proj": lambda: f.linear(x, w_up),
        "mlp_act": act,
        "mlp_down_proj": lambda: f.linear(gate_up[:, :ffn], w_down),
        "add": lambda: x + x,
    }


def _device_spec(torch, device: str, dtype, measure) -> dict:
    """A roofline for the local device: best matmul FLOP/s and copy bandwidth seen."""
    n = 2048 if device == "cuda" else 768
    a = torch.randn(n, n, dtype=dtype, device=device)
    flops = 2 * n ** 3 / (measure(lambda: a @ a, 5)["min"] * 1e-3)
    big = torch.randn(32 * 2 ** 20 // a.element_size(), dtype=dtype, device=device)  # 32 MiB
    out = torch.empty_like(big)
    bw = 2 * big.numel() * big.element_size() / (measure(lambda: out.copy_(big), 5)["min"] * 1e-3)
    name = torch.cuda.get_device_name() if device == "cuda" else "local-cpu"
    tflops = flops / 1e12
    return {"name": name, "fp32_tflops": tflops, "bf16_tflops": tflops, "fp16_tflops": tflops,
            "memory_gb": 0.0, "memory_bw_gbps": bw / 1e9,
            "sm_count": torch.cuda.get_device_properties(0).multi_processor_count if device == "cuda"
            else torch.get_num_threads(),
            "tdp_w": 0.0, "l2_mb": 1.0, "vendor": device, "form_factor": "measured"}


def _write_csv(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fields = list(dict.fromkeys(k for row in rows for k in row))
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def run_profile(out_dir: str | Path, device: str = "cpu", quick: bool = False, threads: int | None = None) -> Path:
    """`threads` (CPU): torch's threads while timing (default: up to 2). One thread keeps the timings steady on a
    machine where other work shares the cores: a multi-threaded GEMM waits for its slowest thread."""
    import torch  # only this command needs torch

    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda asked for, but torch sees no CUDA device")
    if threads is not None and int(threads) < 1:
        raise RuntimeError(f"--threads must be >= 1, got {threads}")
    if device == "cpu":
        torch.set_num_threads(int(threads) if threads else max(1, min(os.cpu_count() or 1, 2)))
    dtype = torch.float16 if device == "cuda" else torch.float32  # CPUs run fp32 GEMMs fastest
    out = Path(out_dir)
    measure = _timer(torch, device)
    shapes = GPU_SHAPES if device == "cuda" else CPU_SHAPES
    if device == "cuda":
        tokens = [1, 16, 64, 128, 256, 512, 1024, 2048, 4096] if not quick else [16, 128, 512, 2048]
    else:
        tokens = [8, 32, 64, 128, 256, 384, 512] if not quick else [16, 64, 128, 256, 512]
    tps = [1, 2] if device == "cpu" else [1, 2, 4, 8]
    reps = 5 if quick else 9
    with torch.inference_mode():
        spec_dict = _device_spec(torch, device, dtype, measure)
        spec_dict["dtype"] = "fp16" if device == "cuda" else "fp32"
        for name, spec in shapes.items():
            rows = []
            for tp in tps:
                for t in tokens:
                    row = {}
                    for op, fn in _layer_ops(torch, spec, t, tp, dtype, device).items():
                        for stat, v in measure(fn, reps).items():
                            row[f"time_stats.{op}.{stat}"] = v
                    row.update(n_head=spec.num_heads, n_kv_head=spec.num_kv_heads, n_embd=spec.hidden_size,
                               n_expanded_embd=spec.ffn_hidden_size, vocab_size=spec.vocab_size,
                               use_gated_mlp=spec.gated_mlp, num_tokens=t, num_tensor_parallel_workers=tp)
                    rows.append(row)
            _write_csv(out / "compute" / f"{name}.csv", rows)
            _write_csv(out / "attention" / f"{name}.csv", _attention_rows(torch, spec, dtype, device, measure,
                                                                           quick, reps))
    (out / "device.json").write_text(json.dumps(spec_dict, indent=2) + "\n", encoding="utf-8")
    return out


def _attention_rows(torch, spec: ModelSpec, dtype, device, measure, quick: bool, reps: int) -> list[dict]:
    sdpa = torch.nn.functional.scaled_dot_product_attention
    hd, heads, kv_heads = spec.head_dim, spec.num_heads, spec.num_kv_heads
    prefill = [64, 128, 256] if quick else [64, 128, 256, 512]
    decode = [(4, 256), (8, 512)] if quick else [(4, 256), (8, 512), (16, 512), (8, 1024)]
    rows = []
    base = dict(n_q_head=heads, n_kv_head=kv_heads, n_embd=spec.hidden_size, num_tensor_parallel_workers=1,
                block_size=1)
    for chunk in prefill:
        q = torch.randn(1, heads, chunk, hd, dtype=dtype, device=device)
        kv = torch.randn(1, heads, chunk, hd, dtype=dtype, device=device)
        stats = measure(lambda q=q, kv=kv: sdpa(q, kv, kv, is_causal=True), reps)
        rows.append({**base, "batch_size": 1, "prefill_chunk_size": chunk, "kv_cache_size": 0,
                     "is_prefill": True, **{f"time_stats.attn_prefill.{k}": v for k, v in stats.items()}})
    for batch, ctx in decode:
        q = torch.randn(batch, kv_heads, heads // kv_heads, hd, dtype=dtype, device=device)
        kv = torch.randn(batch, kv_heads, ctx, hd, dtype=dtype, device=device)
        stats = measure(lambda q=q, kv=kv: sdpa(q, kv, kv), reps)  # grouped query: one read of each KV head
        rows.append({**base, "batch_size": batch, "prefill_chunk_size": 0, "kv_cache_size": ctx,
                     "is_prefill": False, **{f"time_stats.attn_decode.{k}": v for k, v in stats.items()}})
    return rows
