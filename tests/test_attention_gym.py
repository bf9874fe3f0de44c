"""attention-gym's mods, unchanged: factories that close over tensors, offsets-based document masks and
and_masks/or_masks compositions generate, and verify under Triton's interpreter; each captured tensor object is
one explicit kernel argument."""
import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from kernelsearch.attention.captures import bound, find_tensors
from kernelsearch.attention.generate import generate, problem_source
from kernelsearch.attention.spec import load_spec
from kernelsearch.attention.trace import TraceError
from kernelsearch.attention.workflow import run_attention

GYM_SOURCE = (Path(__file__).parent / "attention_gym_mods.py").read_text()
# Ragged lengths on purpose; the documents' lengths add up to 101 tokens.
SHAPES = '''
SHAPES = [dict(batch=1, heads=4, q_len=101, kv_len=101, head_dim=32, dtype="fp32")]
TEST_SHAPES = [dict(batch=1, heads=4, q_len=101, kv_len=101, head_dim=32, dtype="fp32"),
               dict(batch=2, heads=4, kv_heads=2, q_len=77, kv_len=77, head_dim=16, dtype="fp16")]
'''
SPECS = {  # name -> the lines that pick the mods, as a user of attention-gym writes them
    "alibi_causal": "score_mod = generate_alibi_bias(4)\nmask_mod = causal_mask\n",
    "alibi_slopes_sliding_window": "score_mod = generate_alibi_slopes_bias(4)\nmask_mod = generate_sliding_window(24)\n",
    "softcap_prefix_lm": "score_mod = generate_tanh_softcap(5)\nmask_mod = generate_prefix_lm_mask(40)\n",
    "document_causal_with_bias": "OFFSETS = length_to_offsets([30, 17, 41, 13])\n"
                                 "mask_mod = generate_doc_mask_mod(causal_mask, OFFSETS)\n"
                                 "score_mod = generate_doc_distance_bias(OFFSETS)\n",
}


def gym_spec(tmp_path: Path, name: str):
    path = tmp_path / f"{name}.py"
    path.write_text(GYM_SOURCE + "\n" + SPECS[name] + SHAPES)
    return load_spec(path)


def import_file(path: Path):
    spec = importlib.util.spec_from_file_location(f"ks_test_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_each_tensor_object_is_one_argument_named_after_its_variable(tmp_path):
    spec = gym_spec(tmp_path, "document_causal_with_bias")
    kernel = generate(spec)
    # The mask reads document_id four times and offsets twice; the bias has its own document_id object (built
    # from the same offsets) and shares the mask's offsets: three tensors, three arguments.
    assert [c.name for c in kernel.captures] == ["document_id", "offsets", "document_id_2"]
    found = {f.name: f for f in find_tensors(spec.score_mod, spec.mask_mod)}
    assert found["offsets"].tensor is vars(spec.module)["OFFSETS"]
    assert len(found["offsets"].places) == 2  # the bias's cell and the mask's cell (no mod names OFFSETS)
    assert "document_id_ptr, document_id_size0, document_id_stride0, offsets_ptr," in kernel.source
    assert "*, document_id, offsets, document_id_2)" in kernel.source


def test_compositions_and_closed_over_settings_need_no_tensor_arguments(tmp_path):
    for name in ("alibi_causal", "softcap_prefix_lm"):
        kernel = generate(gym_spec(tmp_path, name))
        assert kernel.captures == []
        assert "backward_index=None):" in kernel.source  # no keyword-only capture arguments
    kernel = generate(gym_spec(tmp_path, "alibi_slopes_sliding_window"))
    assert [c.name for c in kernel.captures] == ["slopes"]


def test_generated_problem_gets_the_closure_tensors_and_binds_them_per_call(tmp_path):
    spec = gym_spec(tmp_path, "document_causal_with_bias")
    kernel = generate(spec)
    path = tmp_path / "problem.py"
    path.write_text(problem_source(spec, spec.test_shapes[0], [c.name for c in kernel.captures]))
    problem = import_file(path)  # raised KeyError before: the closure's tensor is no global of the spec
    init = problem.get_init_inputs()
    assert [tuple(t.shape) for t in init] == [(101,), (5,), (101,)]
    assert torch.equal(init[1], torch.tensor([0, 30, 47, 88, 101], dtype=torch.int32))
    # The model rebinds the closure cells to the tensors it was built with, for the call only.
    swapped = [t.clone() for t in init]
    model = problem.Model(*swapped)
    q, k, v = problem.get_inputs()
    seen = []
    original = problem._KS_MASK_MOD

    def spy(b, h, q_idx, kv_idx):
        found = {f.name: f.tensor for f in find_tensors(original)}
        seen.append(found["document_id"] is swapped[2] and found["offsets"] is swapped[1])
        return original(b, h, q_idx, kv_idx)

    problem._KS_MASK_MOD = spy
    model(q, k, v)
    assert seen and all(seen)
    after = {f.name: f.tensor for f in find_tensors(original)}
    assert after["offsets"] is init[1]  # restored


def test_bound_restores_cells_and_globals_after_an_error(tmp_path):
    spec = gym_spec(tmp_path, "alibi_slopes_sliding_window")
    found = find_tensors(spec.score_mod, spec.mask_mod)
    before = found[0].tensor
    with pytest.raises(RuntimeError):
        with bound(found, {"slopes": torch.zeros(4)}):
            assert find_tensors(spec.score_mod)[0].tensor.sum() == 0
            raise RuntimeError("inside")
    assert find_tensors(spec.score_mod)[0].tensor is before


def test_a_tensor_made_inside_the_mod_is_refused_in_one_line(tmp_path):
    path = tmp_path / "inside.py"
    path.write_text(GYM_SOURCE + '''
def score_mod(score, b, h, q_idx, kv_idx):
    return score + torch.ones(4)[h]
''' + SHAPES)
    with pytest.raises(TraceError, match="makes on each call"):
        generate(load_spec(path))


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SPECS))
def test_attention_gym_specs_verify_on_the_cpu(name, tmp_path):
    spec = gym_spec(tmp_path, name)
    result = run_attention(spec, tmp_path / "out", device="cpu", progress=lambda line: None)
    assert len(result.verdicts) == 2
    for shape, verdict in result.verdicts:
        assert verdict.status == "correct", f"{shape.label()}: {verdict.message}"
        assert verdict.checks["second_shape"]["ok"], verdict.checks
