"""Every documented reward hack comes back rejected or incorrect, with a message that names what it did.
Each case fails if the check that catches it is removed (the hack would otherwise pass as correct)."""
import threading

import pytest
import torch

from ...conftest import CANDIDATES, HACKS
from kernelsearch.verify.harness.gpu_timing import roofline_floor_ms
from kernelsearch.verify.worker.runtime_guards import Integrity

CASES = [  # hack file, problem, status, words from the message
    ("output_buffer_reuse", "elementwise_add_relu", "incorrect", "trial 0"),
    ("input_mutation", "elementwise_add_relu", "rejected", "modified its input 1 in place"),
    ("constant_softmax", "softmax_wide", "incorrect", "reference is degenerate"),
    ("hardcoded_shape", "elementwise_add_relu", "shape_specific", "second input shape"),
    ("pytorch_only", "elementwise_add_relu", "rejected", "none of the candidate's own kernels (PyTorch ran: add, relu)"),
    ("try_except_fallback", "elementwise_add_relu", "rejected", "try/except"),
    ("inherits_reference", "elementwise_add_relu", "rejected", "reference Model"),
    ("side_stream", "elementwise_add_relu", "rejected", "another CUDA stream"),
    ("thread", "elementwise_add_relu", "rejected", "imports threading"),
    ("lazy_subclass", "elementwise_add_relu", "rejected", "torch.Tensor subclass"),
    ("lazy_callable", "elementwise_add_relu", "rejected", "work happens later"),
    ("patch_timer", "elementwise_add_relu", "rejected", "assigns to torch.cuda.synchronize"),
    ("patch_via_alias", "elementwise_add_relu", "rejected", "replaced torch.cuda.synchronize"),
    ("frame_inspection", "elementwise_add_relu", "rejected", "imports inspect"),
    ("reads_environment", "elementwise_add_relu", "rejected", "imports os"),
    ("opens_socket", "elementwise_add_relu", "rejected", "imports socket"),
    ("result_cache", "elementwise_add_relu", "incorrect", "trial 1"),
    ("precision_downgrade", "elementwise_add_relu", "incorrect", "elements wrong"),
    ("output_aliases_input", "elementwise_add_relu", "rejected", "shares memory with input 0"),
    ("broadcast_view", "elementwise_add_relu", "rejected", "broadcast view"),
    ("nondeterministic", "elementwise_add_relu", "incorrect", "two runs on the same inputs disagree"),
    ("pytorch_fallback_partial", "elementwise_add_relu", "rejected", "its kernels do not contribute to the output"),
    ("custom_op_hides_pytorch", "elementwise_add_relu", "rejected", "its kernels do not contribute to the output"),
    ("custom_op_in_torch_namespace", "elementwise_add_relu", "rejected", "namespace 'prims', which torch"),
    ("custom_op_library", "elementwise_add_relu", "rejected", "._lib"),
    ("compile_stance", "elementwise_add_relu", "rejected", "the torch.compile baseline's stance"),
]


@pytest.mark.parametrize("hack, problem, status, words", CASES, ids=[c[0] for c in CASES])
def test_hack_is_caught(verify, hack, problem, status, words):
    v = verify(problem, HACKS / f"{hack}.py")
    assert v.status == status, f"{v.status}: {v.message}"
    assert words in v.message


def test_a_custom_op_body_is_seen_by_the_checks(verify):
    # Its PyTorch ops are listed (the dispatch mode runs the body under itself), and a real kernel inside one is
    # correct with nothing listed: the operator's own name is not "PyTorch compute".
    hidden = verify("elementwise_add_relu", HACKS / "custom_op_hides_pytorch.py")
    assert hidden.pytorch_ops == ["add", "relu"], hidden.message
    real = verify("elementwise_add_relu", CANDIDATES / "add_relu_custom_op.py")
    assert real.status == "correct" and real.pytorch_ops == [], real.message


def test_unwritten_output_reads_as_poison(verify):
    v = verify("elementwise_add_relu", HACKS / "output_buffer_reuse.py")
    # Trial 0 runs the reference first and frees its output: none of that answer may reach the candidate.
    # (relu(a + b) is zero for about half the elements, which fresh zeroed memory matches.)
    assert v.trials[0]["order"] == "reference_first"
    assert v.trials[0]["mismatch"]["fraction_wrong"] > 0.4


def test_a_token_kernel_beside_pytorch_is_rejected_and_strict_says_why_sooner(verify):
    plain = verify("elementwise_add_relu", HACKS / "pytorch_fallback_partial.py")
    assert plain.status == "rejected" and plain.pytorch_ops == ["add", "relu"]
    assert plain.checks["own_kernels_contribute"] == {"ok": False}
    strict = verify("elementwise_add_relu", HACKS / "pytorch_fallback_partial.py", strict=True)
    assert strict.status == "rejected" and "add, relu" in strict.message


def test_a_kernel_writing_into_a_buffer_its_model_keeps_contributes(verify):
    # Skipped, such a kernel leaves the buffer as its last call wrote it: the right answer to other inputs only.
    v = verify("elementwise_add_relu", HACKS / "../add_relu_kept_buffer.py")
    assert v.status == "correct", v.message
    assert v.checks["own_kernels_contribute"] == {"ok": True}


def test_a_kernel_right_only_at_the_problems_shapes_passes_kernelbench_s_rules(verify):
    ours = verify("elementwise_add_relu", HACKS / "hardcoded_shape.py")
    assert ours.status == "shape_specific" and "right at the problem's shapes" in ours.message
    assert ours.checks["second_shape"]["ok"] is False and len(ours.trials) == 5
    theirs = verify("elementwise_add_relu", HACKS / "hardcoded_shape.py", rules="kernelbench")
    assert theirs.status == "correct", theirs.message  # the keeper saw the second shape fail: not a forgery here
    assert theirs.checks["second_shape"]["ok"] is False
    assert "shape_specific under kernelsearch's rules" in theirs.checks["second_shape"]["note"]
    assert any("specialised to the problem's shapes" in w for w in theirs.warnings)
    wrong = verify("elementwise_add_relu", HACKS / "output_buffer_reuse.py", rules="kernelbench")
    assert wrong.status == "incorrect"  # wrong at the problem's own shapes is wrong under any rules


def test_a_tainted_worker_is_replaced(verify, pool):
    verify("elementwise_add_relu", HACKS / "patch_via_alias.py")
    after = verify("elementwise_add_relu", HACKS / "../add_relu_triton.py", trials=1)
    assert after.status == "correct", after.message


def test_integrity_sees_threads_settings_and_patches():
    integrity = Integrity()
    assert integrity.violations() == []
    stop = threading.Event()
    helper = threading.Thread(target=stop.wait)  # a library's helper thread: not the candidate's
    helper.start()
    job_code = type("JobThread", (threading.Thread,), {"run": lambda self: stop.wait(), "__module__": "ks_candidate_x"})
    job_code.run.__module__ = "ks_candidate_x"
    candidate_thread = job_code()
    try:
        assert integrity.violations() == []
        candidate_thread.start()
        assert any("thread(s) running its own code" in v for v in integrity.violations())
    finally:
        stop.set()
        helper.join()
        candidate_thread.join()
    original = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = not original
    try:
        assert any("allow_tf32" in v for v in integrity.violations())
    finally:
        torch.backends.cuda.matmul.allow_tf32 = original
    original_allclose = torch.allclose
    torch.allclose = lambda *a, **k: True
    try:
        assert "replaced torch.allclose (monkey-patching the harness)" in integrity.violations()
    finally:
        torch.allclose = original_allclose


def test_roofline_floor():
    # 1 GFLOP of bf16 on an H100 is ~1 us of compute; 1 GB at 3.35 TB/s is ~0.3 ms: memory bound.
    assert roofline_floor_ms(1e9, 1e9, "bf16", "NVIDIA H100 80GB HBM3") == pytest.approx(1e3 / 3.35e3, rel=1e-6)
    assert roofline_floor_ms(1e15, 1.0, "bf16", "NVIDIA H200") == pytest.approx(1e3 * 1e15 / 989e12, rel=1e-6)
    assert roofline_floor_ms(1e9, 1e9, "fp32", "Some Future GPU") is None
