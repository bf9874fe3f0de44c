"""Document masking: packed sequences attend causally within their own document only."""
import torch


def make_captures(shape):
    """Document ids for a packed sequence of shape.q_len tokens: documents of pseudo-random lengths."""
    generator = torch.Generator().manual_seed(0)
    lengths, total = [], 0
    while total < shape.q_len:
        lengths.append(int(torch.randint(shape.q_len // 16 + 1, shape.q_len // 4 + 2, (1,), generator=generator)))
        total += lengths[-1]
    ids = torch.repeat_interleave(torch.arange(len(lengths), dtype=torch.int32), torch.tensor(lengths))
    return {"document_id": ids[: shape.q_len].contiguous()}


document_id = torch.zeros(1, dtype=torch.int32)  # replaced per shape by make_captures


def mask_mod(b, h, q_idx, kv_idx):
    """Same document, and causal."""
    return (document_id[q_idx] == document_id[kv_idx]) & (q_idx >= kv_idx)


SHAPES = [
    dict(batch=4, heads=16, q_len=4096, kv_len=4096, head_dim=64, dtype="bf16"),
    dict(batch=4, heads=16, q_len=4096, kv_len=4096, head_dim=128, dtype="bf16"),
    dict(batch=1, heads=16, q_len=16384, kv_len=16384, head_dim=128, dtype="bf16"),
]
TEST_SHAPES = [
    dict(batch=1, heads=2, q_len=120, kv_len=120, head_dim=32, dtype="fp32"),
]
