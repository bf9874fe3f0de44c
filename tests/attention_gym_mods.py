"""Mods written the way attention-gym writes them (factories that close over their settings and tensors, offsets-
based document masks, torch's and_masks/or_masks), our own code. tests/test_attention_gym.py appends a few lines
choosing score_mod/mask_mod and shapes to this source to make self-contained spec files."""
import torch
from torch import Tensor
from torch.nn.attention.flex_attention import and_masks, or_masks


def causal_mask(b, h, q_idx, kv_idx):
    return q_idx >= kv_idx


def generate_alibi_bias(H: int):
    """ALiBi with the slope computed from the head index and the closed-over head count."""

    def alibi_mod(score, b, h, q_idx, kv_idx):
        scale = torch.exp2(-((h + 1) * 8.0 / H))
        bias = (kv_idx - q_idx) * scale
        return score + bias

    return alibi_mod


def generate_alibi_slopes_bias(H: int):
    """ALiBi with its slopes in a tensor the mod closes over."""
    slopes = torch.exp2(-8.0 * torch.arange(1, H + 1, dtype=torch.float32) / H)

    def alibi_mod(score, b, h, q_idx, kv_idx):
        return score + slopes[h] * (kv_idx - q_idx)

    return alibi_mod


def generate_tanh_softcap(soft_cap: int):
    tanh = torch.tanh

    def tanh_softcap(score, b, h, q_idx, kv_idx):
        return soft_cap * tanh(score / soft_cap)

    tanh_softcap.__name__ = f"tanh_softcap_{soft_cap}"
    return tanh_softcap


def generate_sliding_window(window_size: int):
    def sliding_window(b, h, q_idx, kv_idx):
        return q_idx - kv_idx <= window_size

    mask = and_masks(sliding_window, causal_mask)
    mask.__name__ = f"sliding_window_{window_size}"
    return mask


def generate_prefix_lm_mask(prefix_length: int):
    def prefix_mask(b, h, q_idx, kv_idx):
        return kv_idx < prefix_length

    mask = or_masks(prefix_mask, causal_mask)
    mask.__name__ = f"prefix_lm_causal_mask_{prefix_length}"
    return mask


def length_to_offsets(lengths: list[int], device="cpu") -> Tensor:
    offsets = [0]
    offsets.extend(lengths)
    return torch.cumsum(torch.tensor(offsets, device=device, dtype=torch.int32), dim=-1, dtype=torch.int32)


def _offsets_to_doc_ids_tensor(offsets: Tensor) -> Tensor:
    counts = offsets[1:] - offsets[:-1]
    return torch.repeat_interleave(torch.arange(len(counts), device=offsets.device, dtype=torch.int32), counts)


def generate_doc_mask_mod(mask_mod, offsets: Tensor):
    """`mask_mod` applied within each document, on positions relative to the document's start."""
    document_id = _offsets_to_doc_ids_tensor(offsets)

    def doc_mask_mod(b, h, q_idx, kv_idx):
        same_doc = document_id[q_idx] == document_id[kv_idx]
        q_logical = q_idx - offsets[document_id[q_idx]]
        kv_logical = kv_idx - offsets[document_id[kv_idx]]
        inner_mask = mask_mod(b, h, q_logical, kv_logical)
        return same_doc & inner_mask

    return doc_mask_mod


def generate_doc_distance_bias(offsets: Tensor):
    """A score_mod that reads the same document ids (its own tensor object, built from the same offsets) and the
    offsets tensor the mask reads too: one kernel argument per tensor object."""
    document_id = _offsets_to_doc_ids_tensor(offsets)

    def doc_bias(score, b, h, q_idx, kv_idx):
        return score - 0.25 * (q_idx - offsets[document_id[q_idx]])

    return doc_bias
