"""KV-cache memory planner: how many KV blocks a replica has and how many requests it may batch.

Two semantics (`plan_memory(..., semantics=...)`):

* ``"vidur"`` (Agrawal et al., Vidur, MLSys'24, `vidur/scheduler/utils/memory_planner.py`): GPU memory is
  ``memory_gb * 2**30`` bytes, of which ``memory_margin`` is kept free; the fp16 weights of the transformer
  layers on one GPU (no embedding, no LM head, no norms) are subtracted; every request is charged the KV
  cache of ``max_tokens`` tokens, so ``request_slots = floor(rest / (max_tokens x KV bytes per token))``
  and ``num_blocks = request_slots x ceil(max_tokens / block_size)``. Llama-2-7B on an A100-80GB at TP1:
  29 slots, 7,424 blocks (Vidur's numbers; a test checks them). The batch cap is NOT the slot count: Vidur's
  vllm and sarathi replica schedulers admit requests by free blocks up to their ``batch_size_cap`` (128 by
  default, `vidur/config/config.py`), so ``max_batch_size`` is 128 (``max_num_seqs`` overrides it).
* ``"vllm"`` (default; Kwon et al., vLLM, SOSP'23, `determine_num_available_blocks`): the same usable memory
  (``1 - memory_margin`` is vLLM's ``gpu_memory_utilization``, 0.9 by default) minus all weights on the GPU
  (embedding and LM head included, `sysgym.kernels.weight_bytes`) minus the peak activations of one
  forward pass over ``max_num_batched_tokens`` tokens (vLLM measures this with a profiling run; here
  estimated from the layer's widest tensors) is cut into blocks; the batch cap is vLLM's ``max_num_seqs``
  (256 by default). Requests share blocks as they grow (PagedAttention), so far more than 29 run at once.

`VIDUR_CONFIG` is Vidur's configuration as `simulate` keywords: ``simulate(trace, model="codellama-34b", tp=2,
scheduler="sarathi", chunk_size=512, **VIDUR_CONFIG)`` runs with Vidur's memory planner (its block count),
batch cap 128, ``max_tokens`` 4096 and Vidur's truncation of longer requests (output capped at max_tokens - 1,
then the prompt cut to fit). The result says which cap applied: ``result.config["max_num_seqs"]`` and
``result.plan`` (``max_batch_size``, ``request_slots``, ``num_blocks``).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from sysgym import kernels
from sysgym.errors import InvalidInstanceError, UnknownNameError

SEMANTICS = ("vllm", "vidur")
VLLM_MAX_NUM_SEQS = 256  # vLLM EngineArgs.max_num_seqs default
VIDUR_BATCH_SIZE_CAP = 128  # vidur/config/config.py BaseReplicaSchedulerConfig.batch_size_cap default (v0.0.26)
VIDUR_MAX_TOKENS = 4096  # vidur's request generator max_tokens default (vidur/config/config.py)
# Vidur's configuration (see the module doc): its planner, its token limit with its truncation, its block size.
VIDUR_CONFIG = {"memory_semantics": "vidur", "max_tokens": VIDUR_MAX_TOKENS, "block_size": 16,
                "memory_margin": 0.1, "oversize": "truncate"}
FP16_BYTES = 2  # both semantics plan fp16 weights and KV


@dataclass(frozen=True)
class MemoryPlan:
    """Result of `plan_memory` (bytes are per GPU; one pipeline stage holds layers/pp of the KV cache)."""

    max_batch_size: int  # requests that may run at once (the scheduler's batch cap)
    num_blocks: int  # KV blocks per replica (each holds block_size tokens of every layer on its stage)
    block_size: int
    max_tokens: int  # longest request (prompt + output) the plan admits
    kv_bytes_per_token: float  # per GPU, the layers of one pipeline stage
    weight_bytes: float  # per GPU
    activation_bytes: float  # per GPU (0 under vidur semantics)
    usable_bytes: float  # per GPU, after the margin
    kv_cache_bytes: float  # per GPU, num_blocks x block bytes
    semantics: str
    model: str
    gpu: str
    tp: int
    pp: int
    request_slots: int = 0  # requests of max_tokens each the KV cache holds (Vidur's derived "max batch size")

    @property
    def num_tokens(self) -> int:
        """KV token slots per replica."""
        return self.num_blocks * self.block_size

    def to_dict(self) -> dict:
        return asdict(self)


def plan_memory(model: str = "llama-2-7b", gpu: str = "a100-80gb", *, tp: int = 1, pp: int = 1, block_size: int = 16,
                max_tokens: int = 4096, memory_margin: float = 0.1, semantics: str = "vllm",
                max_num_seqs: int | None = None, max_num_batched_tokens: int | None = None) -> MemoryPlan:
    """Plan the KV cache of one replica of `model` on `gpu` with `tp` x `pp` GPUs (see the module doc).

    `max_num_seqs` is the batch cap (default: 256 under vllm semantics, Vidur's 128 under vidur semantics)."""
    if semantics not in SEMANTICS:
        raise UnknownNameError("memory-plan semantics", semantics, SEMANTICS)
    for name, value in (("tp", tp), ("pp", pp), ("block_size", block_size), ("max_tokens", max_tokens)):
        if int(value) != value or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if not 0 <= memory_margin < 1:
        raise ValueError(f"memory_margin must be in [0, 1), got {memory_margin}")
    spec = kernels.models.get(model)
    dev = kernels.get_gpu(gpu)
    if spec.num_layers % pp:
        layers = -(-spec.num_layers // pp)  # the largest stage
    else:
        layers = spec.num_layers // pp
    usable = dev.memory_gb * 2 ** 30 * (1 - memory_margin)
    kv_heads = max(1.0, spec.num_kv_heads / tp)
    kv_tok = 2 * FP16_BYTES * kv_heads * spec.head_dim * layers
    blocks_per_request = -(-max_tokens // block_size)
    if semantics == "vidur":
        h = spec.hidden_size
        per_layer = (h * spec.qkv_size + h * spec.num_heads * spec.head_dim) / tp + spec.mlp_params() / tp
        weights = per_layer * layers * FP16_BYTES
        act = 0.0
        slots = int((usable - weights) // (kv_tok * max_tokens))
        num_blocks = slots * blocks_per_request
        max_batch = int(max_num_seqs or VIDUR_BATCH_SIZE_CAP)
    else:
        weights = kernels.weight_bytes(spec, "fp16", tp=tp, pp=pp)
        tokens = max_num_batched_tokens or max(max_tokens, 2048)
        # Peak activations of one layer's forward on `tokens` tokens: the residual stream, the QKV output and
        # the (gated) MLP's up-projection and activation; plus fp32 logits for max_num_seqs sampled rows.
        h, f = spec.hidden_size, spec.ffn_hidden_size
        width = h + spec.qkv_size / tp + (3 if spec.gated_mlp else 2) * f / tp
        max_batch = int(max_num_seqs or VLLM_MAX_NUM_SEQS)
        act = tokens * width * FP16_BYTES + max_batch * spec.vocab_size * 4
        num_blocks = int((usable - weights - act) // (kv_tok * block_size))
        slots = num_blocks // blocks_per_request
    if num_blocks < blocks_per_request or max_batch < 1:
        raise InvalidInstanceError(
            f"{spec.name} does not fit on {dev.name} with tp={tp}, pp={pp}: {weights / 2**30:.1f} GiB of weights, "
            f"{usable / 2**30:.1f} GiB usable, not even one request of {max_tokens} tokens fits the KV cache")
    return MemoryPlan(max_batch_size=max_batch, num_blocks=int(num_blocks), block_size=int(block_size),
                      max_tokens=int(max_tokens), kv_bytes_per_token=kv_tok, weight_bytes=float(weights),
                      activation_bytes=float(act), usable_bytes=float(usable),
                      kv_cache_bytes=float(num_blocks * block_size * kv_tok), semantics=semantics,
                      model=spec.name, gpu=dev.name, tp=int(tp), pp=int(pp), request_slots=int(max(slots, 0)))
