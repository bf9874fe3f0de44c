"""Relative position bias: score + (q_idx - kv_idx)."""


def score_mod(score, b, h, q_idx, kv_idx):
    """Adds the signed distance between query and key positions."""
    return score + (q_idx - kv_idx)


SHAPES = [  # verified, tuned and benchmarked on the GPU
    dict(batch=4, heads=16, q_len=4096, kv_len=4096, head_dim=64, dtype="bf16"),
    dict(batch=4, heads=16, q_len=4096, kv_len=4096, head_dim=128, dtype="bf16"),
    dict(batch=1, heads=16, q_len=16384, kv_len=16384, head_dim=128, dtype="bf16"),
]
TEST_SHAPES = [  # verified on the CPU through Triton's interpreter (ragged lengths on purpose)
    dict(batch=1, heads=2, q_len=67, kv_len=67, head_dim=32, dtype="fp32"),
    dict(batch=2, heads=2, q_len=40, kv_len=90, head_dim=64, dtype="fp16"),
]
