"""The checks after the trials: the same inputs again (determinism), and a second input shape (hard-coded
sizes), where both models may be built again at that shape from the same seed."""
from __future__ import annotations

from .errors import Outcome, problem_call
from .keeper_link import VARIANT_SEED
from .memory import held_tensors


def check_determinism(job, v, problem, model_new, first_output) -> None:
    """Run trial 0 again: an output that moves between identical runs reads uninitialized memory or races."""
    again = job.call(model_new, problem, job.req.seed)
    result = job.compare(again, first_output)
    job.poison.scrub(again + first_output, protect=held_tensors(model_new))
    v.checks["determinism"] = {"ok": result["ok"], "max_abs_diff": result["max_abs_err"]}
    if not result["ok"]:
        raise Outcome("incorrect", "two runs on the same inputs disagree (reads uninitialized memory, or a "
                                   f"race): {result['message']}")

def check_variant(job, v, reference, model_new, init_inputs) -> None:
    """A second input shape, where the problem's size constants allow one: catches hard-coded sizes. When the
    shape changes the model's own sizes, both models are built again at it from the same seed."""
    req = job.req
    if not req.variant_source:
        v.checks["second_shape"] = {"ok": None, "skipped": "no size constant can vary independently of the model"}
        return
    changes = ", ".join(f"{k}={new}" for k, (old, new) in req.variant_changes.items())
    try:
        variant = job.import_file(req.variant_source, "variant")
        variant_init = problem_call(variant.get_init_inputs, "the second shape's get_init_inputs()")
        rebuilt = repr(variant_init) != repr(init_inputs)
        variant_reference = job.build(variant.Model, variant_init, "Model", "problem_error")
        if not rebuilt and not _same_parameters(reference, variant_reference):
            v.checks["second_shape"] = {"ok": None, "skipped": f"the model itself changes at {changes}"}
            return
        job.ready(req.seed + VARIANT_SEED, "variant")  # the reference runs at this shape
    except Outcome as o:
        v.checks["second_shape"] = {"ok": None, "skipped": f"reference does not run at {changes}: {o.message}"}
        return
    if rebuilt:
        model_new = job.build(type(model_new), variant_init, "ModelNew at the second shape", "runtime_error")
    result = job.call_and_judge(model_new, variant, req.seed + VARIANT_SEED, "variant")
    v.checks["second_shape"] = {"ok": result["ok"], "changes": changes, "max_abs_err": result["max_abs_err"],
                                "rebuilt_models": rebuilt}
    if not result["ok"]:
        raise Outcome("incorrect", f"wrong at a second input shape ({changes}), right at the sampled one "
                                   f"(hard-coded sizes?): {result['message']}")


def _same_parameters(m1, m2) -> bool:
    import torch
    s1, s2 = m1.state_dict(), m2.state_dict()
    return s1.keys() == s2.keys() and all(s1[k].shape == s2[k].shape and torch.equal(s1[k], s2[k]) for k in s1)
