"""Catalogues, model shapes, memory footprints and input validation."""
import pytest

from sysgym import kernels
from sysgym.kernels import models

REQUIRED_GPUS = ["a100-40gb", "a100-80gb", "h100-sxm", "h100-pcie", "h200", "l40s", "a10g", "v100", "mi300x"]


def test_gpu_catalogue_has_required_entries_and_units():
    assert set(REQUIRED_GPUS) <= set(kernels.list_gpus())
    a100 = kernels.get_gpu("A100-80GB")
    assert a100.peak_flops("bf16") == pytest.approx(312e12)
    assert a100.memory_bw == pytest.approx(2039e9)
    h100 = kernels.get_gpu("h100-sxm")
    assert h100.peak_flops("fp8") == pytest.approx(2 * h100.peak_flops("bf16"), rel=1e-3)
    with pytest.raises(ValueError, match="fp8"):
        a100.peak_flops("fp8")


def test_unknown_names_list_the_known_ones():
    with pytest.raises(KeyError, match="h100-sxm") as err:
        kernels.get_gpu("h1000")
    assert "a100-80gb" in str(err.value)
    with pytest.raises(KeyError, match="llama-2-7b"):
        models.get("llama-9")
    with pytest.raises(KeyError, match="dgx-h100-pod"):
        kernels.get_cluster("my-pod")


# Narayanan et al. SC'21 Table 1: parameter counts (billions) of the weak-scaling GPT shapes.
MEGATRON_TABLE1 = {"gpt-1.7b": 1.7, "gpt-3.6b": 3.6, "gpt-7.5b": 7.5, "gpt-18b": 18.4, "gpt-39b": 39.1,
                   "gpt-76b": 76.1, "gpt-145b": 145.6, "gpt-310b": 310.1, "gpt-530b": 529.6, "gpt-1t": 1008.0}


@pytest.mark.parametrize("name,billions", MEGATRON_TABLE1.items())
def test_megatron_shapes_reproduce_table1_parameter_counts(name, billions):
    assert models.get(name).num_params() / 1e9 == pytest.approx(billions, rel=0.03)


def test_published_parameter_counts():
    assert models.get("llama-2-7b").num_params() / 1e9 == pytest.approx(6.74, rel=0.01)
    assert models.get("llama-2-70b").num_params() / 1e9 == pytest.approx(68.98, rel=0.01)
    assert models.get("llama-3-8b").num_params() / 1e9 == pytest.approx(8.03, rel=0.01)
    assert models.get("gpt3-175b").num_params() / 1e9 == pytest.approx(175, rel=0.01)
    assert {"llama-2-13b", "codellama-34b", "llama-3-70b", "qwen-72b"} <= set(models.list())


def test_memory_footprints_by_hand():
    # Llama-2-7B KV: 2 (K,V) x 32 layers x 32 heads x 128 dims x 2 bytes = 524,288 B per token.
    assert kernels.kv_bytes_per_token("llama-2-7b", "fp16") == 524_288
    assert kernels.kv_bytes_per_token("llama-2-7b", "fp16", tp=4) == 131_072
    # Llama-2-70B (8 KV heads): 2 x 80 x 8 x 128 x 1 byte (fp8) = 163,840; tp=16 replicates heads at 1/GPU.
    assert kernels.kv_bytes_per_token("llama-2-70b", "fp8") == 163_840
    assert kernels.kv_bytes_per_token("llama-2-70b", "fp8", tp=16) == 2 * 80 * 1 * 128
    # Llama-2-7B weights: 6,738,415,616 parameters x 2 bytes.
    assert kernels.weight_bytes("llama-2-7b", "bf16") == 6_738_415_616 * 2
    # tp=2, pp=2: 16 layers / 2 ranks + the larger end (embedding or head+final norm) / 2.
    m = models.get("llama-2-7b")
    layer = 4096 * (3 * 4096) + 4096 * 4096 + 3 * 4096 * 11008 + 2 * 4096
    assert m.layer_params() == layer
    expected = (16 * layer / 2 + (32000 * 4096 / 2 + 4096)) * 2
    assert kernels.weight_bytes("llama-2-7b", "bf16", tp=2, pp=2) == pytest.approx(expected)


def test_bad_sizes_raise_value_error():
    with pytest.raises(ValueError):
        kernels.predict_op_times("a100-80gb", "llama-2-7b", -1, 1)
    with pytest.raises(ValueError):
        kernels.predict_op_times("a100-80gb", "llama-2-7b", 128, 0)
    with pytest.raises(ValueError):
        kernels.predict_collective_time("all_reduce", -5, 8, "dgx-a100")
    with pytest.raises(ValueError):
        kernels.predict_collective_time("broadcast_all", 1024, 8, "dgx-a100")
    with pytest.raises(ValueError):
        kernels.predict_attention_time("a100-80gb", "llama-2-7b", decode_context_lens=[-3])
    with pytest.raises(ValueError):
        kernels.weight_bytes("llama-2-7b", "bf16", tp=0)
    with pytest.raises(ValueError):
        models.ModelSpec(hidden_size=-4096, ffn_hidden_size=1, num_layers=1, num_heads=1)


def test_cluster_presets():
    pod = kernels.get_cluster("dgx-a100-pod")
    assert pod.gpus_per_node == 8 and pod.inter_node.bandwidth_gbps == 25.0  # 200 Gb/s HDR per GPU
    assert kernels.get_cluster("dgx-h100-pod").inter_node.bandwidth_gbps == 50.0  # 400 Gb/s NDR
    custom = kernels.Cluster(gpu="h100-sxm", num_nodes=2, gpus_per_node=8, intra_node=450.0, inter_node=50.0)
    assert custom.num_gpus == 16 and custom.nodes_spanned(9) == 2
