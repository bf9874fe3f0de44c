"""Attention in plain PyTorch with FlexAttention's semantics: the reference the generated kernels must match."""
import math

import torch

# Largest error allowed of a generated kernel's output or gradient, max |ours - reference| / max |reference|. Measured
# (2026-12-05): fp32 <= 8.4e-6 (relative position; the rest <= 2.2e-6), fp16 <= 7.9e-4 (fp16 inputs and P/dS tiles:
# 2**-11 = 4.9e-4 per rounding); bf16 has 8 bits of mantissa against fp16's 11, so 8x fp16's less one doubling.
TOLERANCE = {"fp32": 1e-4, "fp16": 4e-3, "bf16": 2e-2}


def reference_attention(q, k, v, score_mod=None, mask_mod=None, scale=None):
    """softmax(mod(q @ k^T * scale) masked) @ v in float32, one head at a time to bound memory.
    Mods are applied elementwise on broadcast index tensors; fully masked rows give zeros."""
    batch, heads, q_len, head_dim = q.shape
    group = heads // k.shape[1]
    scale = 1.0 / math.sqrt(head_dim) if scale is None else scale
    out = torch.empty(q.shape, dtype=torch.float32, device=q.device)
    b = torch.arange(batch, device=q.device).view(batch, 1, 1, 1)
    q_idx = torch.arange(q_len, device=q.device).view(1, 1, q_len, 1)
    kv_idx = torch.arange(k.shape[2], device=q.device).view(1, 1, 1, k.shape[2])
    for head in range(heads):
        h = torch.full((1, 1, 1, 1), head, device=q.device, dtype=torch.long)
        qh = q[:, head:head + 1].float()
        kh, vh = k[:, head // group:head // group + 1].float(), v[:, head // group:head // group + 1].float()
        scores = (qh @ kh.transpose(-1, -2)) * scale
        if score_mod is not None:
            scores = score_mod(scores, b, h, q_idx, kv_idx)
        if mask_mod is not None:
            keep = torch.broadcast_to(mask_mod(b, h, q_idx, kv_idx), scores.shape)
            scores = scores.masked_fill(~keep, float("-inf"))
        probs = torch.softmax(scores, dim=-1).nan_to_num(0.0)  # rows with no key at all: zeros, like FlexAttention
        out[:, head:head + 1] = probs @ vh
    return out.to(q.dtype)
