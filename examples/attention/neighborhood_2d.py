"""2D neighborhood attention (NATTEN): each token of a GRID x GRID image attends to a WINDOW x WINDOW
window around it, the window clamped at the borders so that it always holds WINDOW x WINDOW keys."""
import torch

GRID = 64
WINDOW = 13
RADIUS = WINDOW // 2


def mask_mod(b, h, q_idx, kv_idx):
    """Key inside the query's window, whose centre is moved inwards near the image border."""
    q_row, q_col = q_idx // GRID, q_idx % GRID
    kv_row, kv_col = kv_idx // GRID, kv_idx % GRID
    centre_row = torch.clamp(q_row, RADIUS, GRID - 1 - RADIUS)
    centre_col = torch.clamp(q_col, RADIUS, GRID - 1 - RADIUS)
    return ((centre_row - kv_row).abs() <= RADIUS) & ((centre_col - kv_col).abs() <= RADIUS)


SHAPES = [  # 64 x 64 tokens = 4096
    dict(batch=4, heads=16, q_len=4096, kv_len=4096, head_dim=64, dtype="bf16"),
    dict(batch=4, heads=16, q_len=4096, kv_len=4096, head_dim=128, dtype="bf16"),
]
TEST_SHAPES = [
    dict(batch=1, heads=1, q_len=4096, kv_len=4096, head_dim=16, dtype="fp32"),
]
