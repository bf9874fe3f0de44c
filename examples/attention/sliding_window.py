"""Sliding-window causal attention: each query sees the last WINDOW keys."""

WINDOW = 1024


def mask_mod(b, h, q_idx, kv_idx):
    """Causal, and no further back than WINDOW positions."""
    return (q_idx >= kv_idx) & (q_idx - kv_idx <= WINDOW)


SHAPES = [
    dict(batch=4, heads=16, q_len=4096, kv_len=4096, head_dim=64, dtype="bf16"),
    dict(batch=4, heads=16, q_len=4096, kv_len=4096, head_dim=128, dtype="bf16"),
    dict(batch=1, heads=16, q_len=16384, kv_len=16384, head_dim=128, dtype="bf16"),
]
TEST_SHAPES = [  # 1100 tokens reach past the window, so its edge is exercised
    dict(batch=1, heads=2, q_len=130, kv_len=130, head_dim=32, dtype="fp32"),
    dict(batch=1, heads=2, q_len=1100, kv_len=1100, head_dim=16, dtype="fp16"),  # past the window
]
