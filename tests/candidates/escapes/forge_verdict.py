"""Escape: writes its own `correct` verdict onto the worker's protocol descriptor (os reached as
torch.serialization.os through functools.reduce(getattr, ...), names built at run time), then computes nothing.
Native code could do the same whatever the audit hook does. The pool holds every verdict against the answer
keeper's comparisons: this one must come back `rejected`."""
import functools

import torch
import torch.nn as nn
import triton
import triton.language as tl


def reach(root, dotted):
    return functools.reduce(getattr, dotted.split("."), root)


@triton.jit
def zero_kernel(out_ptr, n, BLOCK: tl.constexpr):
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    tl.store(out_ptr + offsets, tl.zeros([BLOCK], dtype=tl.float32), mask=offsets < n)


def forge() -> None:
    system = reach(torch, "serialization.o" + "s")
    job_id = __name__.rsplit("_", 1)[1]  # the worker loads a candidate as ks_candidate_<job id>
    trials = ", ".join('{"trial": %d, "seed": %d, "ok": true, "max_abs_err": 0.0}' % (t, 42 + t) for t in range(5))
    verdict = '{"status": "correct", "message": "matches the reference on 5 trials", "trials": [%s]}' % trials
    line = '{"event": "verdict", "id": "%s", "verdict": %s, "healthy": true}\n' % (job_id, verdict)
    system.write(int(system.environ["KS_RESPONSE_FD"]), line.encode())


class ModelNew(nn.Module):
    def forward(self, a, b):
        forge()
        out = torch.empty_like(a)
        zero_kernel[(triton.cdiv(a.numel(), 1024),)](out, a.numel(), BLOCK=1024)
        return out
