"""Soft-capping (Gemma 2, Grok): scores squashed into (-30, 30) with tanh."""
import torch

CAP = 30.0


def score_mod(score, b, h, q_idx, kv_idx):
    """30 * tanh(score / 30): not additive, so the kernel applies it in natural-log units."""
    return CAP * torch.tanh(score / CAP)

SHAPES = [
    dict(batch=4, heads=16, q_len=4096, kv_len=4096, head_dim=64, dtype="bf16"),
    dict(batch=4, heads=16, q_len=4096, kv_len=4096, head_dim=128, dtype="bf16"),
    dict(batch=1, heads=16, q_len=16384, kv_len=16384, head_dim=128, dtype="bf16"),
]
TEST_SHAPES = [
    dict(batch=1, heads=2, q_len=50, kv_len=50, head_dim=32, dtype="fp32"),
    dict(batch=1, heads=2, q_len=64, kv_len=80, head_dim=64, dtype="fp16"),
]
