"""ALiBi: a per-head linear distance penalty, with a causal mask."""
import torch

HEADS = 16
# attention-gym's slopes: 2 ** (-8 (h + 1) / H)
alibi_slopes = torch.exp2(-8.0 * torch.arange(1, HEADS + 1, dtype=torch.float32) / HEADS)


def score_mod(score, b, h, q_idx, kv_idx):
    """Penalises each key by its distance to the query, at a slope of its own per head."""
    return score + alibi_slopes[h] * (kv_idx - q_idx)


def mask_mod(b, h, q_idx, kv_idx):
    """Causal: a query sees itself and earlier keys."""
    return q_idx >= kv_idx


SHAPES = [
    dict(batch=4, heads=16, q_len=4096, kv_len=4096, head_dim=64, dtype="bf16"),
    dict(batch=4, heads=16, q_len=4096, kv_len=4096, head_dim=128, dtype="bf16"),
    dict(batch=1, heads=16, q_len=16384, kv_len=16384, head_dim=128, dtype="bf16"),
]
TEST_SHAPES = [
    dict(batch=1, heads=HEADS, q_len=70, kv_len=70, head_dim=32, dtype="fp32"),
    dict(batch=1, heads=HEADS, q_len=33, kv_len=33, head_dim=64, dtype="fp16"),
]
