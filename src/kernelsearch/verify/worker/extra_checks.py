"""The checks after the trials: the same inputs again (determinism), the same call with the candidate's own kernels
skipped (do they compute the output at all?), and a second input shape (hard-coded sizes), where both models may
be built again at that shape from the same seed."""
from __future__ import annotations

import torch

from ..errors import Found, Outcome, problem_call
from ..harness.memory import held_tensors
from ..verdict import CONTRIBUTION_SEED, VARIANT_SEED, Status
from .runtime_guards import FreshAllocationsPoisoned

SECOND_SHAPE, CONTRIBUTION = "second_shape", "own_kernels_contribute"  # their names in the verdict's checks


def check_determinism(job, problem, model_new, first_output) -> Found:
    """Run trial 0 again: an output that moves between identical runs reads uninitialized memory or races."""
    again = job.call(model_new, problem, job.req.seed)
    result = job.compare(again, first_output)
    job.poison.scrub(again + first_output, protect=held_tensors(model_new))
    found = Found("determinism", {"ok": result["ok"], "max_abs_diff": result["max_abs_err"]})
    if not result["ok"]:
        found.outcome = Outcome(Status.INCORRECT, "two runs on the same inputs disagree (reads uninitialized memory, "
                                                  f"or a race): {result['message']}")
    return found


def check_contribution(job, problem, model_new) -> Found:
    """Inputs it has not seen, first with every launch of the candidate's own kernels skipped (Triton launches not
    made; a load_inline function's tensors poisoned once it returns; every uninitialized allocation poisoned as it
    is made), then as they are. Outputs that still agree were computed without its kernels (a dummy kernel beside
    torch.matmul): rejected. Skipped first, and its values copied before the real call, so that an output buffer
    the model keeps cannot carry the real call's answer."""
    counter = job.w.counter
    seed = job.req.seed + CONTRIBUTION_SEED
    counter.skipping, counter.unskippable = True, 0
    try:
        without = job.call(model_new, problem, seed, FreshAllocationsPoisoned())
    except Outcome:
        return Found(CONTRIBUTION, {"ok": True, "note": "without its kernels the call fails"})
    finally:
        counter.skipping = False
    kept = [t.clone() for t in without]
    job.poison.scrub(without, protect=held_tensors(model_new))
    del without
    unskippable = counter.unskippable
    real = job.call(model_new, problem, seed)
    result = job.compare(kept, real)
    job.poison.scrub(kept + real, protect=held_tensors(model_new))
    if unskippable and result["ok"]:
        return Found(CONTRIBUTION, {
            "ok": None, "note": f"not checked: {unskippable} call(s) of its load_inline functions returned no tensor, "
                                "so what they compute could not be taken away"})
    found = Found(CONTRIBUTION, {"ok": not result["ok"]})
    if result["ok"]:
        found.outcome = Outcome(Status.REJECTED, "its kernels do not contribute to the output: with every launch of "
                                                 "its own kernels skipped it returns the same output (the work is done "
                                                 "elsewhere, by PyTorch or by no one)")
    return found


def check_variant(job, reference, model_new, init_inputs) -> Found:
    """A second input shape, where the problem's size constants allow one: catches hard-coded sizes. When the
    shape changes the model's own sizes, both models are built again at it from the same seed. A candidate wrong
    there, or raising, is shape_specific; under KernelBench's rules (which judge at the problem's shapes only) it
    stays correct, and the check says what it found."""
    req = job.req
    if not req.variant_source:
        return Found(SECOND_SHAPE, {"ok": None, "skipped": "no size constant can vary independently of the model"})
    changes = ", ".join(f"{k}={new}" for k, (old, new) in req.variant_changes.items())
    try:
        variant = job.import_file(req.variant_source, "variant")
        variant_init = problem_call(variant.get_init_inputs, "the second shape's get_init_inputs()")
        rebuilt = repr(variant_init) != repr(init_inputs)
        variant_reference = job.build(variant.Model, variant_init, "Model", Status.PROBLEM_ERROR)
        if not rebuilt and not _same_parameters(reference, variant_reference):
            return Found(SECOND_SHAPE, {"ok": None, "skipped": f"the model itself changes at {changes}"})
        job.ready(req.seed + VARIANT_SEED, "variant")  # the reference runs at this shape
    except Outcome as o:
        return Found(SECOND_SHAPE, {"ok": None, "skipped": f"reference does not run at {changes}: {o.message}"})
    try:
        if rebuilt:
            model_new = job.build(type(model_new), variant_init, "ModelNew at the second shape", Status.RUNTIME_ERROR,
                                  like=variant.Model)
        result = job.call_and_judge(model_new, variant, req.seed + VARIANT_SEED, "variant")
        failure = "" if result["ok"] else f"wrong at a second input shape ({changes}): {result['message']}"
    except Outcome as o:
        if o.status not in (Status.RUNTIME_ERROR, Status.COMPILE_ERROR):
            raise  # rejected there (aliasing, an input changed in place, ...): that holds at any shape
        result, failure = {"ok": False, "max_abs_err": None}, f"fails at a second input shape ({changes}): {o.message}"
    found = Found(SECOND_SHAPE, {"ok": result["ok"], "changes": changes, "max_abs_err": result["max_abs_err"],
                                 "rebuilt_models": rebuilt})
    if failure:
        message = f"right at the problem's shapes, {failure} (sizes fixed in the kernel?)"
        if req.rules == "kernelbench":
            found.entry["note"] = f"shape_specific under kernelsearch's rules: {message}"
            found.warnings.append(f"specialised to the problem's shapes: {message}")
        else:
            found.outcome = Outcome(Status.SHAPE_SPECIFIC, message)
    return found


def _same_parameters(m1, m2) -> bool:
    s1, s2 = m1.state_dict(), m2.state_dict()
    return s1.keys() == s2.keys() and all(s1[k].shape == s2[k].shape and torch.equal(s1[k], s2[k]) for k in s1)
