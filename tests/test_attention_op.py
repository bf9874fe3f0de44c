"""The generated attention as a drop-in for training (issue #27): custom operators a compiled graph keeps whole (and
in eager the same kernels without their dispatch), block indexes built once per shape and kept (rebuilt when a
captured tensor changes, none without a mask), and the training example's gradients against the reference at every
step, compiled with fullgraph=True. Under Triton's interpreter, in subprocesses (TRITON_INTERPRET must be set before
triton is imported)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .test_attention import EXAMPLES
from kernelsearch.attention.generate import generate
from kernelsearch.attention.spec import load_spec

ROOT = Path(__file__).parents[1]

INDEX_CHECK = '''
import sys, torch
sys.path.insert(0, sys.argv[1])
from kernelsearch.attention.kernel_module import gpu_captures, load_kernel_module, make_inputs
from kernelsearch.attention.reference import reference_attention
from kernelsearch.attention.spec import Shape, load_spec
from pathlib import Path

def module_for(name):
    spec = load_spec(sys.argv[2] + f"/{name}.py")
    shape = Shape(batch=1, heads=2, q_len=70, kv_len=70, head_dim=16, dtype="fp32")
    spec.test_shapes = [shape]
    kernel = load_kernel_module(Path(sys.argv[3]) / f"{name}_kernel.py")
    builds = []
    build = kernel.build_block_index
    kernel.build_block_index = lambda *a, **k: builds.append(a[4:6]) or build(*a, **k)
    kernel.unwrapped_build = build
    return spec, shape, kernel, gpu_captures(spec, kernel, shape, "cpu"), builds

def step(kernel, q, k, v, captures):
    leaves = [t.clone().requires_grad_(True) for t in (q, k, v)]
    out = kernel.attention(*leaves, **captures)
    out.sum().backward()
    return out.detach(), leaves[0].grad

# causal: the forward's index and the backward's two, built on the first step only
spec, shape, kernel, captures, builds = module_for("causal")
q, k, v = make_inputs(shape, "cpu")
for _ in range(3):
    step(kernel, q, k, v, captures)
assert len(builds) == 3 and len(kernel.BLOCK_INDEXES) == 3, (builds, len(kernel.BLOCK_INDEXES))
# an index passed in is kept, not built again
kernel.BLOCK_INDEXES.clear()
config = kernel.pick_config(70, 70, 16, q.dtype, q.device)
prebuilt = kernel.unwrapped_build(1, 2, 70, 70, config["BLOCK_M"], config["BLOCK_N"], "cpu", {})
kernel.attention(q, k, v, block_index=prebuilt)
assert len(builds) == 3 and len(kernel.BLOCK_INDEXES) == 1

# eager, plain tensors: the kernels through _EagerAttention, no operator dispatched; the operators' path (the one a
# compiled graph takes) gives the same output and gradient
calls = []
operator = kernel.attention_forward_op
kernel.attention_forward_op = lambda *args: calls.append(1) or operator(*args)
eager_out, eager_grad = step(kernel, q, k, v, captures)
assert calls == [] and eager_grad is not None
kernel._eager = lambda *tensors: False
op_out, op_grad = step(kernel, q, k, v, captures)
assert calls == [1] and torch.equal(eager_out, op_out) and torch.equal(eager_grad, op_grad)

# no mask: no index at all
spec, shape, kernel, captures, builds = module_for("relative_position")
step(kernel, q, k, v, captures)
assert builds == [] and len(kernel.BLOCK_INDEXES) == 0

# documents: the mask reads a captured tensor; changed in place (its version) or replaced, the index is rebuilt
spec, shape, kernel, captures, builds = module_for("document_mask")
ids = captures["document_id"]
step(kernel, q, k, v, captures)
assert len(builds) == 3
ids[35:] += 1  # a document boundary where none was
out, _ = step(kernel, q, k, v, captures)
assert len(builds) == 6
expected = reference_attention(q, k, v, None, spec.mask_mod)  # the mod reads the same tensor (gpu_captures)
assert (out - expected).abs().max() < 1e-4, (out - expected).abs().max()
step(kernel, q, k, v, {"document_id": ids.clone()})  # equal values, another tensor: not trusted by identity
assert len(builds) == 9
print("ok")
'''


@pytest.fixture(scope="module")
def kernels(tmp_path_factory):
    work = tmp_path_factory.mktemp("op")
    for name in ("causal", "relative_position", "document_mask"):
        spec = load_spec(EXAMPLES / f"{name}.py")
        (work / f"{name}_kernel.py").write_text(generate(spec).source)
    return work


def _run(args: list, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "TRITON_INTERPRET": "1"})


def test_block_indexes_are_built_once_and_again_when_a_capture_changes(kernels, tmp_path):
    script = tmp_path / "check.py"
    script.write_text(INDEX_CHECK)
    done = _run([str(script), str(ROOT / "src"), str(EXAMPLES), str(kernels)])
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-3000:]


def test_attention_is_an_operator_with_a_fake_implementation(kernels):
    source = (kernels / "causal_kernel.py").read_text()
    # one namespace per kernel source: two different kernels never share an operator
    other = generate(load_spec(EXAMPLES / "sliding_window.py")).source
    namespace = source.split('custom_op("', 1)[1].split("::", 1)[0]
    assert namespace.startswith("kernelsearch_causal_") and namespace not in other
    assert ".register_fake" in source and ".register_autograd(" in source


@pytest.mark.slow
def test_the_training_example_compiles_whole_and_its_gradients_match(tmp_path):
    # ALiBi + causal: a captured tensor (the slopes) and a mask; the block under torch.compile(fullgraph=True),
    # which raises on any graph break
    done = _run([str(ROOT / "examples" / "attention_training.py"), "--compile", "--steps", "2"], timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    steps = [line for line in done.stdout.splitlines() if line.startswith("step ")]
    assert len(steps) == 2, done.stdout
