"""`kernelsearch attention --tune` end to end without a GPU: every config of the space (each way of loading tiles,
the persistent grid, the backward's) built and run under Triton's interpreter, with a stand-in for the GPU's
timer, so that a config the template cannot build shows here rather than in a device call."""
import json
import os
import subprocess
import sys

from .test_attention import EXAMPLES

DRY_RUN = r'''
import json, sys, zlib
from pathlib import Path
import torch, triton.testing
from kernelsearch.attention import kernel_module, tune
from kernelsearch.attention.generate import generate
from kernelsearch.attention.spec import Shape, load_spec

def fake_ms(fn):  # runs the call once (the interpreter checks it builds and runs), times it by its config;
    fn()          # warp-specialized configs fastest, so that the persistent stage's fallback without it runs too
    spread = zlib.crc32(json.dumps(CURRENT, sort_keys=True).encode()) % 1000 / 1000
    return (0.5 if CURRENT.get("ws") else 1.0) + spread

CURRENT = {}
def fastest(configs, make_call, timings, key, progress, original=tune._fastest):
    def traced(config):
        call = make_call(config)
        def run():
            CURRENT.clear(); CURRENT.update(config)
            return call()
        return run
    return original(configs, traced, timings, key, progress)

triton.testing.do_bench = lambda fn, **kw: fake_ms(fn)
tune._fastest = fastest
torch.cuda.get_device_capability = lambda *a: (9, 0)  # Hopper: every way of loading is tried
torch.cuda.empty_cache = lambda: None
to_cpu = kernel_module.make_inputs
tune.make_inputs = lambda shape, device, seed=0: to_cpu(shape, "cpu", seed)
kernel_module.gpu_captures.__defaults__ = ("cpu",)
spec = load_spec(sys.argv[1])
spec.shapes = [Shape(batch=1, heads=2, q_len=80, kv_len=80, head_dim=16, dtype="fp32")]
out = Path(sys.argv[2])
forward, backward = tune.tune_configs(spec, generate(spec).source, out, lambda line: None)
(out / "tuned.py").write_text(generate(spec, forward, backward).source)
module = kernel_module.load_kernel_module(out / "tuned.py")
print(json.dumps({"forward": forward, "backward": backward,
                  "baked": [module.CONFIGS, module.BACKWARD_CONFIGS] == [forward, backward],
                  "timings": json.loads((out / f"{spec.name}_tuning.json").read_text())["timings"]}))
'''


def test_every_config_of_the_tuning_space_builds_and_the_fastest_is_kept(tmp_path):
    done = subprocess.run([sys.executable, "-c", DRY_RUN, str(EXAMPLES / "causal.py"), str(tmp_path)],
                          capture_output=True, text=True, env={**os.environ, "TRITON_INTERPRET": "1"}, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    timings = result["timings"]
    (forward_key,) = result["forward"]
    from kernelsearch.attention.tune import BACKWARD_CANDIDATES, FORWARD_CANDIDATES, LOADS, PERSISTENT_PROGRAMS

    # none skipped: every candidate in every way of loading ran (a skip means the template failed to build it)
    assert len(timings[forward_key]) == len(FORWARD_CANDIDATES) * len(LOADS)
    assert len(timings[f"{forward_key}-backward"]) == len(BACKWARD_CANDIDATES) * len(LOADS)
    persistent = timings[f"{forward_key}-persistent"]
    # the (warp-specialized) winner, then it on the persistent grid at each SM count, with and without warp
    # specialization
    assert [(t.get("persistent", 0), t["ws"]) for t in persistent] == [
        (0, True), *[(n, True) for n in PERSISTENT_PROGRAMS], *[(n, False) for n in PERSISTENT_PROGRAMS]]
    # the kept configs are the fastest of their timings, and the generated file carries them
    assert result["forward"][forward_key] == {k: v for k, v in min(persistent, key=lambda t: t["ms"]).items()
                                              if k != "ms"}
    backward = min(timings[f"{forward_key}-backward"], key=lambda t: t["ms"])
    assert result["backward"][forward_key] == {k: v for k, v in backward.items() if k != "ms"}
    assert result["baked"] is True
