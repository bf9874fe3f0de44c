"""The generated attention() is differentiable: its fused dQ/dK/dV kernels match autograd through the PyTorch
reference under Triton's interpreter, for every example, attention-gym's mods, and score_mods whose derivative
is not one. fp32 and fp16 only: the interpreter computes bf16 wrongly."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .test_attention import EXAMPLES, NAMES
from .test_attention_gym import GYM_SOURCE
from .test_attention_gym import SPECS as GYM_SPECS
from kernelsearch.attention.generate import generate
from kernelsearch.attention.reference import TOLERANCE
from kernelsearch.attention.spec import load_spec

CHECKER = Path(__file__).with_name("attention_grad_check.py")
# Odd lengths and head dims. With the interpreter's blocks (dK/dV: 32 queries x 64 keys, dQ: 64 x 32) 150 tokens
# give full, partial and ragged blocks on both sides; the fp16 case is grouped-query with more keys than queries.
FP32 = dict(batch=1, heads=2, q_len=150, kv_len=150, head_dim=24, dtype="fp32")
FP16_GQA = dict(batch=1, heads=4, kv_heads=2, q_len=77, kv_len=130, head_dim=16, dtype="fp16")
FP16_SQUARE = dict(batch=2, heads=4, kv_heads=2, q_len=77, kv_len=77, head_dim=16, dtype="fp16")  # documents

CUSTOM = {
    # Every rule of the score_mod derivative at once, and a strictly causal mask: the first query keeps no key.
    "mixed_score_strict_causal": '''
def score_mod(score, b, h, q_idx, kv_idx):
    near = (q_idx - kv_idx) < 5
    a = torch.where(near, score * 0.5 + torch.sigmoid(score), torch.clamp(score, -1.0, 1.0))
    return a - torch.exp(score / 8) + score ** 2 / 10 + torch.maximum(score, h * 0.1) - torch.abs(score) / 3


def mask_mod(b, h, q_idx, kv_idx):
    return q_idx > kv_idx
''',
    # Index arithmetic in float math, done in float32 from the index vectors (trace.py): abs, min, / and * by
    # integers, h; and the same distance compared as integers in the mask.
    "index_arithmetic_in_float": '''
def score_mod(score, b, h, q_idx, kv_idx):
    return score - torch.abs(q_idx - kv_idx).float() / 16 + torch.minimum(kv_idx - q_idx, 3 * h) * 0.01


def mask_mod(b, h, q_idx, kv_idx):
    return (q_idx - kv_idx) < 100
''',
    # The result ignores the score (dQ = dK = 0), and the mask's full kv blocks are no single run (every other
    # 32-key block): the dQ kernel reads them from its index list one by one.
    "score_ignored_strided_blocks": '''
def score_mod(score, b, h, q_idx, kv_idx):
    return (kv_idx - q_idx) * 0.05


def mask_mod(b, h, q_idx, kv_idx):
    return ((kv_idx // 32) % 2 == 0) | (q_idx // 32 == kv_idx // 32)
''',
}

# Tiles loaded through tensor descriptors (TMA on Hopper; the interpreter emulates them, zeros past the ends
# included) with the main loops warp-specialized, in both directions, and the forward on a persistent grid (3
# programs in the interpreter: each walks 2 to 4 tiles): a run of full blocks with a ragged tail (causal), no mask
# (relative position), full blocks read from the index one by one (strided).
DESCRIPTORS = {"config": {"BLOCK_M": 64, "BLOCK_N": 64, "num_warps": 4, "num_stages": 1, "tma": True, "ws": True,
                          "persistent": 1},
               "backward_config": {"BLOCK_M1": 32, "BLOCK_N1": 64, "BLOCK_M2": 64, "BLOCK_N2": 32, "num_warps": 4,
                                   "num_stages": 1, "tma": True, "ws": True}}
DESCRIPTOR_CASES = {"causal": EXAMPLES / "causal.py", "relative_position": EXAMPLES / "relative_position.py",
                    "strided": CUSTOM["score_ignored_strided_blocks"] + "\nSHAPES = []\nTEST_SHAPES = []\n"}


def jobs(tmp_path: Path) -> list:
    out = []
    for name in NAMES:
        if name == "neighborhood_2d":  # its 64 x 64 grid needs 4096 tokens: minutes in the interpreter
            continue
        documents = name == "document_mask"
        out.append([str(EXAMPLES / f"{name}.py"), [FP32, FP16_SQUARE if documents else FP16_GQA]])
    for name, lines in GYM_SPECS.items():
        path = tmp_path / f"gym_{name}.py"
        path.write_text(GYM_SOURCE + "\n" + lines + "SHAPES = []\nTEST_SHAPES = []\n")
        documents = "OFFSETS" in lines  # 101 tokens of documents
        out.append([str(path), [dict(FP32, q_len=101, kv_len=101), FP16_SQUARE] if documents else [FP32, FP16_GQA]])
    for name, body in CUSTOM.items():
        path = tmp_path / f"{name}.py"
        path.write_text("import torch\n" + body + "\nSHAPES = []\nTEST_SHAPES = []\n")
        out.append([str(path), [FP32, FP16_GQA]])
    for name, source in DESCRIPTOR_CASES.items():
        path = tmp_path / f"descriptors_{name}.py"  # its own spec name, so its rows stay apart
        path.write_text(source.read_text() if isinstance(source, Path) else "import torch\n" + source)
        out.append([str(path), [dict(FP32, **DESCRIPTORS), dict(FP16_GQA, **DESCRIPTORS)]])
    return out


@pytest.fixture(scope="module")
def gradients(tmp_path_factory):
    """All cases in one interpreter process (~2 min of one core)."""
    work = tmp_path_factory.mktemp("grad")
    done = subprocess.run([sys.executable, str(CHECKER), str(work), json.dumps(jobs(work))], capture_output=True,
                          text=True, env={**os.environ, "TRITON_INTERPRET": "1"}, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    results = {}
    for row in json.loads(done.stdout.strip().splitlines()[-1]):
        results.setdefault(row["spec"], []).append(row)
    return results


SPEC_NAMES = ([n for n in NAMES if n != "neighborhood_2d"] + [f"gym_{n}" for n in GYM_SPECS] + list(CUSTOM)
              + [f"descriptors_{n}" for n in DESCRIPTOR_CASES])


@pytest.mark.slow
@pytest.mark.parametrize("name", SPEC_NAMES)
def test_fused_backward_matches_autograd_through_the_reference(gradients, name):
    rows = gradients[name]
    assert len(rows) == 2
    for row in rows:
        limit = TOLERANCE[row["shape"].split()[-1]]
        for tensor in ("out", "dq", "dk", "dv"):
            assert row[tensor] <= limit, f"{name} {row['shape']}: {tensor} off by {row[tensor]:.2e} > {limit}"


def test_score_mod_derivative_is_generated_only_where_it_is_not_one():
    additive = generate(load_spec(EXAMPLES / "relative_position.py")).source
    assert "_score_grad(qk" not in additive.split("def _score_grad", 1)[1]  # defined, never called
    softcap = generate(load_spec(EXAMPLES / "softcap.py")).source
    # d(30 tanh(s / 30)) / ds = (1 - tanh^2): the multiply is in both backward kernels
    assert softcap.count("* _score_grad(qk") == 2 and "(1.0 - sm1 * sm1)" in softcap
    assert "def attention_backward_op(" in softcap and ".register_autograd(_gradients" in softcap
