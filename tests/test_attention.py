"""The attention generator on the CPU: every example generates and verifies under Triton's interpreter."""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from kernelsearch.attention.generate import generate
from kernelsearch.attention.kernel_module import load_kernel_module
from kernelsearch.attention.spec import SpecError, load_spec
from kernelsearch.attention.trace import TraceError
from kernelsearch.attention.workflow import run_attention

EXAMPLES = Path(__file__).parents[1] / "examples" / "attention"
NAMES = sorted(p.stem for p in EXAMPLES.glob("*.py"))


def write_spec(tmp_path, body: str, shapes: str = 'dict(batch=1, heads=2, q_len=40, kv_len=40, head_dim=16, '
                                                 'dtype="fp32")') -> Path:
    path = tmp_path / "spec.py"
    path.write_text("import torch\n" + textwrap.dedent(body) + f"\nSHAPES = [{shapes}]\nTEST_SHAPES = [{shapes}]\n")
    return path


def test_all_eight_examples_are_there():
    assert NAMES == ["alibi_causal", "causal", "document_mask", "neighborhood_2d", "prefix_lm", "relative_position",
                     "sliding_window", "softcap"]


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_example_generates_and_verifies_on_the_cpu(name, tmp_path):
    spec = load_spec(EXAMPLES / f"{name}.py")
    result = run_attention(spec, tmp_path, device="cpu", progress=lambda line: None)
    assert len(result.verdicts) == len(spec.test_shapes) >= 1
    for shape, verdict in result.verdicts:
        assert verdict.status == "correct", f"{shape.label()}: {verdict.message}"
        assert verdict.checks["second_shape"]["ok"], verdict.checks  # odd lengths and head dims too
    source = result.kernel_path.read_text()
    assert "make_block_ptr" not in source  # removed in Triton 3.9
    # Triton kernels of its own, nothing compiled by torch (it only asks torch.compiler.is_compiling())
    assert "import triton" in source and "torch.compile(" not in source
    summary = json.loads((tmp_path / f"{name}_summary.json").read_text())
    assert [v["status"] for v in summary["verdicts"]] == ["correct"] * len(spec.test_shapes)


Q_F, KV_F, H_F = "(q_idx).to(tl.float32)", "(kv_idx).to(tl.float32)", "(h).to(tl.float32)"
DISTANCE_F = f"({Q_F}) - ({KV_F})"  # q_idx - kv_idx, from the index vectors in float32


def test_additive_score_mods_use_the_exp2_form_and_others_do_not():
    relpos = generate(load_spec(EXAMPLES / "relative_position.py")).source
    assert f"qk = qk * (sm_scale * 1.44269504) + ({DISTANCE_F}) * 1.44269504" in relpos
    softcap = generate(load_spec(EXAMPLES / "softcap.py")).source
    assert "score = qk * sm_scale" in softcap and "qk = (sm2) * 1.44269504" in softcap


@pytest.mark.parametrize("body, computed", [
    # index arithmetic exact in float32 is done there from the index vectors: no int-to-float per score
    ("score + (q_idx - kv_idx)", f"+ ({DISTANCE_F}) * 1.44269504"),
    ("score - torch.abs(q_idx - kv_idx) * 2", f"(score) - ((tl.abs({DISTANCE_F})) * (2))"),
    ("score + (kv_idx - q_idx).float() / 8", f"sm1 = ({KV_F}) - ({Q_F})"),
    ("score + torch.minimum(q_idx - kv_idx, 3 * h)", f"(tl.minimum({DISTANCE_F}, (3) * ({H_F})))"),
    ("torch.where(q_idx - kv_idx < 5, score, score - (q_idx + 1))", f"(score) - (({Q_F}) + (1))"),
    # not exact in float32 (integer division; a product of two indices passes 2**24): integers, converted after
    ("score + (q_idx // 4 - kv_idx)", "sm1 = (sm0) - (kv_idx)"),
    ("score + q_idx * kv_idx * 1e-6", "sm0 = (q_idx) * (kv_idx)"),
])
def test_index_arithmetic_in_float_math_is_done_in_float32_where_exact(tmp_path, body, computed):
    path = tmp_path / "mod.py"
    path.write_text(f"import torch\n\n\ndef score_mod(score, b, h, q_idx, kv_idx):\n    return {body}\n\n\n"
                    "SHAPES = []\nTEST_SHAPES = []\n")
    source = generate(load_spec(path)).source
    scores = source[source.index("def _scores"):source.index("def _attend_block")]
    assert computed in scores, scores
    exact = "//" not in body and "q_idx * kv_idx" not in body
    assert (Q_F in scores) == exact, scores


def test_captured_tensors_become_kernel_arguments():
    kernel = generate(load_spec(EXAMPLES / "alibi_causal.py"))
    assert [c.name for c in kernel.captures] == ["alibi_slopes"]
    assert "alibi_slopes_ptr, alibi_slopes_size0, alibi_slopes_stride0," in kernel.source
    assert "def attention(q, k, v, sm_scale=None, return_lse=False, config=None, block_index=None, " \
           "backward_config=None,\n              backward_index=None, *, alibi_slopes):" in kernel.source


@pytest.mark.parametrize("body, words", [
    ("def score_mod(score, b, h, q_idx, kv_idx):\n    return torch.erf(score)\n", "uses erf"),
    ("def score_mod(score, b, h, q_idx, kv_idx):\n    return score if q_idx > 3 else -score\n", "control flow"),
    ("def mask_mod(b, h, q_idx):\n    return q_idx > 0\n", r"must take \(b, h, q_idx, kv_idx\)"),
    ("def score_mod(score, b, h, q_idx, kv_idx):\n    return score ** 2.5\n", "small integer powers"),
])
def test_untranslatable_mods_name_the_problem(tmp_path, body, words):
    with pytest.raises(TraceError, match=words):
        generate(load_spec(write_spec(tmp_path, body)))


@pytest.mark.parametrize("body, shapes, words", [
    ("x = 1\n", None, "neither score_mod nor mask_mod"),
    ("def mask_mod(b, h, q_idx, kv_idx):\n    return q_idx >= kv_idx\n", "dict(batch=1)", "bad entry in SHAPES"),
    ("def mask_mod(b, h, q_idx, kv_idx):\n    return q_idx >= kv_idx\n",
     'dict(batch=1, heads=3, kv_heads=2, q_len=8, kv_len=8, head_dim=16, dtype="fp32")', "not a multiple"),
    ("def mask_mod(b, h, q_idx, kv_idx):\n    return q_idx >= kv_idx\n",
     'dict(batch=1, heads=2, q_len=8, kv_len=8, head_dim=16, dtype="fp8")', "dtype 'fp8'"),
])
def test_bad_specs_are_refused(tmp_path, body, shapes, words):
    path = write_spec(tmp_path, body, shapes) if shapes else write_spec(tmp_path, body)
    with pytest.raises(SpecError, match=words):
        load_spec(path)
    with pytest.raises(SpecError, match="not found"):
        load_spec(tmp_path / "absent.py")


BLOCK_INDEX_AND_LSE = '''
import math, sys, torch
sys.path.insert(0, sys.argv[1])
import kernel
torch.manual_seed(0)
# strictly causal, 128 tokens, 32x32 blocks: query block i keeps i full blocks and its diagonal block in part
index = kernel.build_block_index(1, 2, 128, 128, 32, 32, "cpu", {})
full_num, full_idx, part_num, part_idx, tail_kept, mb, mh, full_range = index
assert full_num.flatten().tolist() == [0, 1, 2, 3] and part_num.flatten().tolist() == [1, 1, 1, 1]
assert part_idx[0, 0, :, 0].tolist() == [0, 1, 2, 3] and full_idx[0, 0, 3, :3].tolist() == [0, 1, 2]
assert (mb, mh) == (1, 1) and full_range  # each row's full blocks are one run: the kernel loops over a range
assert tail_kept.flatten().tolist() == [0, 0, 0, 0]  # 128 = 4 x 32: no ragged block
# 100 tokens, 32-blocks: kv block 3 (keys 96..99) is the ragged tail, in no list; flagged where the mask keeps
# any of it. By kv block (the dK/dV kernel's view), the ragged query block 3 is the tail instead.
full_num, full_idx, part_num, part_idx, tail_kept, mb, mh, full_range = kernel.build_block_index(
    1, 2, 100, 100, 32, 32, "cpu", {})
assert full_num.flatten().tolist() == [0, 1, 2, 3] and part_num.flatten().tolist() == [1, 1, 1, 0]
assert tail_kept.flatten().tolist() == [0, 0, 0, 1] and full_idx.shape[-1] == 4
full_num, full_idx, part_num, part_idx, tail_kept, mb, mh, full_range = kernel.build_block_index(
    1, 2, 100, 100, 32, 32, "cpu", {}, by_kv=True)
assert full_num.flatten().tolist() == [2, 1, 0, 0] and part_num.flatten().tolist() == [1, 1, 1, 0]
assert full_idx[0, 0, 0, :2].tolist() == [1, 2] and tail_kept.flatten().tolist() == [1, 1, 1, 1] and full_range
# strictly causal: the first query sees no key at all -> zeros and an LSE of -inf, never NaN
q, k, v = (torch.randn(1, 2, 50, 16) for _ in range(3))
out, lse = kernel.attention(q, k, v, return_lse=True)
scores = (q @ k.transpose(-1, -2)) / math.sqrt(16)
scores = scores.masked_fill(~(torch.arange(50)[:, None] > torch.arange(50)[None, :]), float("-inf"))
assert torch.equal(out[:, :, 0], torch.zeros_like(out[:, :, 0])) and not out.isnan().any()
assert torch.isneginf(lse[:, :, 0]).all()
assert torch.allclose(lse[:, :, 1:], torch.logsumexp(scores, -1)[:, :, 1:], atol=1e-5)
# any scale: in the exp2's multiply-add when positive (no score_mod here), in the scores otherwise (0: equal
# weights on the kept keys; negative: the softmax of the negated scores)
for scale in (0.3, 0.0, -0.5):
    out, lse = kernel.attention(q, k, v, sm_scale=scale, return_lse=True)
    s = ((q @ k.transpose(-1, -2)) * scale).masked_fill(~(torch.arange(50)[:, None] > torch.arange(50)[None, :]),
                                                         float("-inf"))
    assert torch.allclose(out, torch.softmax(s, -1).nan_to_num(0.0) @ v, atol=1e-5), scale
    assert torch.allclose(lse[:, :, 1:], torch.logsumexp(s, -1)[:, :, 1:], atol=1e-5), scale
print("ok")
'''


def test_block_index_fully_masked_rows_and_lse(tmp_path):
    spec = load_spec(write_spec(tmp_path, "def mask_mod(b, h, q_idx, kv_idx):\n    return q_idx > kv_idx\n"))
    (tmp_path / "kernel.py").write_text(generate(spec).source)
    (tmp_path / "check.py").write_text(BLOCK_INDEX_AND_LSE)
    done = subprocess.run([sys.executable, str(tmp_path / "check.py"), str(tmp_path)], capture_output=True,
                          text=True, env={**os.environ, "TRITON_INTERPRET": "1"}, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "ok"


def test_cli_attention_usage_error_is_one_line(tmp_path):
    done = subprocess.run([sys.executable, "-m", "kernelsearch", "attention", str(tmp_path / "absent.py")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "spec file not found" in done.stderr and len(done.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("flag, said", [("--tune", "--tune needs a GPU"), ("--bench", "--bench needs a GPU")])
def test_gpu_only_flags_on_the_cpu_are_refused_before_any_work(tmp_path, flag, said):
    done = subprocess.run([sys.executable, "-m", "kernelsearch", "attention", str(EXAMPLES / "causal.py"), flag,
                           "--device", "cpu", "--out", str(tmp_path / "out")], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2 and said in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert done.stdout == "" and not (tmp_path / "out").exists()  # no kernel written, no shape verified


def test_tuned_configs_are_baked_in_and_picked_per_shape(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))  # an H100
    forward = {"128-bfloat16-4096-4096": {"BLOCK_M": 128, "BLOCK_N": 128, "num_warps": 8, "num_stages": 3,
                                          "tma": True},
               "128-bfloat16-16384-16384": {"BLOCK_M": 128, "BLOCK_N": 64, "num_warps": 8, "num_stages": 4,
                                            "tma": False}}
    backward = {"128-bfloat16-4096-4096": {"BLOCK_M1": 32, "BLOCK_N1": 128, "BLOCK_M2": 128, "BLOCK_N2": 32,
                                           "num_warps": 4, "num_stages": 2}}
    path = tmp_path / "tuned_kernel.py"
    path.write_text(generate(load_spec(EXAMPLES / "causal.py"), forward, backward).source)
    module = load_kernel_module(path)
    gpu = torch.device("cuda")
    assert module.pick_config(4096, 4096, 128, torch.bfloat16, gpu)["tma"] is True
    assert module.pick_config(16384, 16384, 128, torch.bfloat16, gpu)["num_stages"] == 4
    assert module.pick_config(12000, 12000, 128, torch.bfloat16, gpu)["num_stages"] == 4  # the nearest length
    assert module.pick_config(4096, 4096, 64, torch.bfloat16, gpu) == module.DEFAULT_GPU_CONFIG  # no D=64 entry
    assert module.pick_config(16384, 16384, 64, torch.bfloat16, gpu) == module.DEFAULT_GPU_LONG_CONFIG
    assert module.pick_config(16384, 16384, 256, torch.bfloat16, gpu) == module.DEFAULT_GPU_CONFIG  # too large
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 0))  # an A100: less shared memory
    assert module.pick_config(16384, 16384, 64, torch.bfloat16, gpu) == module.DEFAULT_GPU_CONFIG
    assert module.pick_backward_config(4096, 4096, 64, torch.bfloat16, gpu)["BLOCK_N1"] == 64  # per head dim
    assert module.pick_backward_config(4096, 4096, 96, torch.bfloat16, gpu)["BLOCK_N1"] == 128
    assert module.pick_backward_config(8192, 8192, 128, torch.bfloat16, gpu)["BLOCK_N2"] == 32
    assert module.pick_config(4096, 4096, 128, torch.bfloat16, torch.device("cpu")) == module.DEFAULT_CPU_CONFIG


@pytest.mark.slow
def test_gpu_bench_script_builds_checks_and_tables_on_the_cpu(tmp_path):
    script = Path(__file__).parents[1] / "benchmarks" / "attention_bench.py"
    done = subprocess.run([sys.executable, str(script), "--smoke", "--specs", "causal"], capture_output=True,
                          text=True, env={**os.environ, "OUT": str(tmp_path)}, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    rows = json.loads((tmp_path / "attention_bench.json").read_text())
    assert [r["check"] for r in rows] == ["ok", "ok"]  # both TEST_SHAPES, output and gradients vs the reference
    assert set(rows[0]["ours_error"]) == {"out", "dq", "dk", "dv"} and rows[0]["ours_fwdbwd_ms"][0] > 0
    assert "| causal | B=1 H=2 Sq=100" in (tmp_path / "attention_bench.md").read_text()
