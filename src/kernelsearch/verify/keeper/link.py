"""The socket between a worker and its answer keeper: JSON messages and raw tensor bytes, never pickle (the
keeper must not run anything the candidate's process sends it), and the worker's side of the conversation."""
from __future__ import annotations

import base64
import json
import socket
import struct
from dataclasses import dataclass

import torch
from torch.multiprocessing.reductions import rebuild_cuda_tensor, reduce_tensor

from ..errors import Outcome
from ..harness.chunks import CHUNK_ELEMENTS
from ..harness.memory import Footprint
from ..verdict import Status

HEADER = struct.Struct("!I")  # each message: its length, then that many bytes of JSON
MAX_MESSAGE_BYTES = 1 << 20  # a header names shapes and dtypes; a bigger one is a broken or hostile peer
DTYPES = ("float32", "float16", "bfloat16", "float64", "int64", "int32", "int16", "int8", "uint8", "bool",
          "complex64", "complex128")  # a tensor's dtype on the wire


class LinkClosed(RuntimeError):
    """The other side went away (the keeper died, or the worker did)."""


def send_message(sock: socket.socket, **message) -> None:
    data = json.dumps(message, default=str).encode()
    sock.sendall(HEADER.pack(len(data)) + data)


def recv_message(sock: socket.socket) -> dict:
    (size,) = HEADER.unpack(recv_exact(sock, HEADER.size))
    if size > MAX_MESSAGE_BYTES:
        raise LinkClosed(f"a message of {size} bytes (at most {MAX_MESSAGE_BYTES})")
    message = json.loads(recv_exact(sock, size))
    if not isinstance(message, dict):
        raise LinkClosed("a message that is not a JSON object")
    return message


def recv_exact(sock: socket.socket, n: int) -> bytes:
    buffer = bytearray(n)
    recv_into(sock, memoryview(buffer))
    return bytes(buffer)


def recv_into(sock: socket.socket, view: memoryview, what: str = "") -> None:
    """Fill `view` from the socket, however many reads it takes."""
    got = 0
    while got < view.nbytes:
        k = sock.recv_into(view[got:], view.nbytes - got)
        if k == 0:
            raise LinkClosed(f"the other side closed the link{what}")
        got += k


def describe_tensors(tensors, share: bool = False) -> list[dict]:
    """Each tensor's dtype, shape and device; with `share`, a GPU tensor also carries a CUDA IPC handle to its memory
    (`ipc`), through which the keeper reads it in place: no copy, no socket (19_ReLU's 6 GiB output took ~5 s a
    comparison through the socket and the CPU, which put the job past its time limit)."""
    shared = [share_cuda(t) if share and t.device.type == "cuda" else None for t in tensors]
    return [{"dtype": str(t.dtype).removeprefix("torch."), "shape": list(t.shape), "device": t.device.type,
             **({"ipc": ipc} if ipc else {})} for t, ipc in zip(tensors, shared)]


def share_cuda(t) -> dict | None:
    """What another process needs to open a GPU tensor's memory (torch.multiprocessing's CUDA reduction, as JSON);
    None where CUDA will not make a handle (on the H100 with a /dev/shm that was not a tmpfs: "invalid argument"):
    then the keeper asks for the bytes through the socket."""
    torch.cuda.synchronize()  # the candidate's kernels have written it before the keeper reads
    try:
        _, (_, size, stride, offset, _, _, device, handle, size_bytes, offset_bytes, _, counter, counter_offset,
            event, event_sync) = reduce_tensor(t.detach())
    except RuntimeError:  # torch's AcceleratorError is one
        return None
    return {"stride": list(stride), "offset": offset, "gpu": device, "handle": _b64(handle), "size_bytes": size_bytes,
            "offset_bytes": offset_bytes, "counter": _b64(counter), "counter_offset": counter_offset,
            "event": _b64(event), "event_sync": bool(event_sync)}


def open_cuda(spec: dict):
    """The keeper's view of a worker's GPU tensor from its `ipc` handle; ValueError when the handle does not open or
    the view would reach past the memory it names."""
    ipc = spec["ipc"]
    dtype = getattr(torch, spec["dtype"])
    shape, stride, offset = [int(n) for n in spec["shape"]], [int(n) for n in ipc["stride"]], int(ipc["offset"])
    extent = offset + sum((n - 1) * st for n, st in zip(shape, stride)) + 1 if all(shape) else 0
    if min(stride + [offset, 0]) < 0 or extent * dtype.itemsize > int(ipc["size_bytes"]):
        raise ValueError("the shared tensor reaches past the memory it names")
    try:
        return rebuild_cuda_tensor(torch.Tensor, torch.Size(shape), tuple(stride), offset, torch.TypedStorage, dtype,
                                   int(ipc["gpu"]), _unb64(ipc["handle"]), int(ipc["size_bytes"]),
                                   int(ipc["offset_bytes"]), False, _unb64(ipc["counter"]), int(ipc["counter_offset"]),
                                   _unb64(ipc["event"]), bool(ipc["event_sync"]))
    except Exception as e:  # whatever the driver or a hostile handle makes of it: the socket is the way then
        raise ValueError(f"the CUDA IPC handle did not open: {str(e).splitlines()[0][:200]}") from None


def _b64(raw: bytes | None) -> str | None:
    return None if raw is None else base64.b64encode(raw).decode()


def _unb64(text: str | None) -> bytes | None:
    return None if text is None else base64.b64decode(text)


def send_tensor(sock: socket.socket, t) -> None:
    """A tensor's values in row-major order, a chunk at a time (a chunk's host copy is the only extra memory)."""
    flat = t.detach().reshape(-1)
    for start in range(0, flat.numel(), CHUNK_ELEMENTS):
        chunk = flat[start:start + CHUNK_ELEMENTS].contiguous().cpu()
        sock.sendall(memoryview(chunk.view(-1).view(torch.uint8).numpy()))


def recv_tensor(sock: socket.socket, spec: dict):
    """A host tensor of `spec`'s dtype and shape, filled from the socket."""
    if spec.get("dtype") not in DTYPES:
        raise LinkClosed(f"dtype {spec.get('dtype')!r} is not one a tensor is sent in")
    t = torch.empty([int(n) for n in spec["shape"]], dtype=getattr(torch, spec["dtype"]))
    if t.numel():
        recv_into(sock, memoryview(t.view(-1).view(torch.uint8).numpy()), " in the middle of a tensor")
    return t



@dataclass
class Prepared:
    """What the keeper's first reference calls of a job saw: for the worker's memory plan, its checks on what the
    candidate does to its inputs, the first call's time limit and the degenerate-reference warning."""
    footprint: Footprint | None
    aliases: bool
    mutates: bool
    broadcasts: bool
    reference_s: float
    degenerate: str | None
    device_bytes: int = 0  # the answers the keeper holds on the device now (the first trials')


class KeeperLink:
    """The worker's end: ask for answers to be ready, send outputs to be compared. The keeper knows the job from
    the pool, not from here: this side can only ask about the seeds the job's request names."""

    def __init__(self, sock: socket.socket, device: str):
        self.sock, self.device = sock, device

    def ask(self, **message) -> dict:
        try:
            send_message(self.sock, **message)
            reply = recv_message(self.sock)
        except (OSError, LinkClosed) as e:
            raise Outcome(Status.RUNTIME_ERROR, f"verifier error: the answer keeper is gone ({e})") from None
        if reply.get("status"):  # the reference failed, or the keeper refused the request
            raise Outcome(reply["status"], reply.get("message", "the answer keeper refused the request"))
        return reply

    def prepare(self, job_id: str) -> Prepared:
        reply = self.ask(op="prepare", job=job_id)
        footprint = Footprint(**reply["footprint"]) if reply.get("footprint") else None
        return Prepared(footprint, bool(reply["aliases"]), bool(reply["mutates"]), bool(reply["broadcasts"]),
                        float(reply["reference_s"]), reply.get("degenerate"), int(reply.get("device_bytes") or 0))

    def ready(self, job_id: str, seed: int, kind: str) -> None:
        """Have the answers for (seed, kind) computed now (before the candidate runs), or raise the reference's
        failure as an Outcome."""
        self.ask(op="ready", job=job_id, seed=seed, kind=kind)

    def compare(self, job_id: str, seed: int, kind: str, outs: list) -> dict:
        """The comparison's result (correctness.compare's dict), made by the keeper against its answers."""
        try:
            send_message(self.sock, op="compare", job=job_id, seed=seed, kind=kind,
                         outputs=describe_tensors(outs, share=self.device == "cuda"))
            reply = recv_message(self.sock)
            if reply.get("send"):
                for t in outs:
                    send_tensor(self.sock, t)
                reply = recv_message(self.sock)
        except (OSError, LinkClosed) as e:
            raise Outcome(Status.RUNTIME_ERROR, f"verifier error: the answer keeper is gone ({e})") from None
        if self.device == "cuda":
            torch.cuda.ipc_collect()  # the keeper has let go of the shared outputs: their memory can be freed
        if reply.get("status"):
            raise Outcome(reply["status"], reply.get("message", "the answer keeper refused the comparison"))
        return reply["result"]

    def done(self, job_id: str) -> None:
        try:
            send_message(self.sock, op="done", job=job_id)
            recv_message(self.sock)
        except (OSError, LinkClosed):
            pass
