"""Causal attention."""


def mask_mod(b, h, q_idx, kv_idx):
    """A query sees itself and earlier keys."""
    return q_idx >= kv_idx


SHAPES = [
    dict(batch=4, heads=16, q_len=4096, kv_len=4096, head_dim=64, dtype="bf16"),
    dict(batch=4, heads=16, q_len=4096, kv_len=4096, head_dim=128, dtype="bf16"),
    dict(batch=1, heads=16, q_len=16384, kv_len=16384, head_dim=128, dtype="bf16"),
]
TEST_SHAPES = [
    dict(batch=1, heads=2, q_len=100, kv_len=100, head_dim=32, dtype="fp32"),
    dict(batch=1, heads=4, kv_heads=2, q_len=64, kv_len=64, head_dim=64, dtype="fp16"),  # grouped-query
]
