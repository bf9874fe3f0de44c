"""Prefix-LM: full attention inside the first PREFIX tokens, causal after them."""

PREFIX = 1024


def mask_mod(b, h, q_idx, kv_idx):
    """Every query sees the whole prefix; past it, attention is causal."""
    return (kv_idx < PREFIX) | (q_idx >= kv_idx)


SHAPES = [
    dict(batch=4, heads=16, q_len=4096, kv_len=4096, head_dim=64, dtype="bf16"),
    dict(batch=4, heads=16, q_len=4096, kv_len=4096, head_dim=128, dtype="bf16"),
    dict(batch=1, heads=16, q_len=16384, kv_len=16384, head_dim=128, dtype="bf16"),
]
TEST_SHAPES = [
    dict(batch=1, heads=2, q_len=96, kv_len=96, head_dim=32, dtype="fp32"),
]
