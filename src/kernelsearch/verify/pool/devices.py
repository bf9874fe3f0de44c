"""Which device the verifier runs on: a device asked for that is not here is a one-line error, never a pool with no
worker (whose requests would wait forever)."""
from __future__ import annotations

import os


class DeviceError(ValueError):
    """The device asked for is not on this machine (the CLI prints it as one line and exits 2)."""


def resolve_device(device: str) -> str:
    """auto, cuda or cpu -> cuda or cpu."""
    if device not in ("auto", "cuda", "cpu"):
        raise DeviceError(f"unknown device {device!r} (auto, cuda or cpu)")
    if device == "cpu":
        return device
    import torch  # only to ask for a GPU: a CPU pool's process never loads torch
    if torch.cuda.is_available():
        return "cuda"
    if device == "auto":
        return "cpu"
    why = ("this torch is a CPU-only build" if torch.version.cuda is None else
           f"torch {torch.__version__} finds none; CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r}")
    raise DeviceError(f"--device cuda: no CUDA GPU is visible here ({why}); --device cpu runs Triton kernels in "
                      f"the interpreter")


def resolve_gpus(asked: list[int] | None) -> list[int]:
    """The GPUs to start one worker each on: those asked for, all visible ones by default."""
    import torch  # a GPU pool's: see resolve_device
    count = torch.cuda.device_count()
    gpus = asked if asked is not None else list(range(count))
    if not gpus:
        raise DeviceError("no GPU to verify on: the list of GPUs is empty")
    missing = [g for g in gpus if not 0 <= g < count]
    if missing:
        raise DeviceError(f"no GPU {', '.join(map(str, missing))} here: {count} visible")
    return gpus
