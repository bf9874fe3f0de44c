"""Which constants of a problem are sizes, and the value each size takes at the verifier's second input shape.

The second shape exists to catch kernels that hard-code sizes, so every size changes, including those that
shape the model's parameters (in_features, hidden_size, channels); everything else stays, because changing it
would change the operation rather than its extent, or break the model. The rule, in the order it is applied:

- only integers of at least 2 are sizes: floats are scales, probabilities and bounds; 1 is a broadcast or
  singleton dimension; 0 and negatives are offsets or flags;
- a name in NOT_SIZES is never a size (the list says why, per kind);
- `dim` / `axis` / `*_dim` / `*_axis` below 8 is an axis index (tensors here have at most 5 dimensions);
- `depth` that the model reads counts blocks (ViT's `depth = 6`); one that only get_inputs reads is a 3D extent;
- a constant that only get_inputs reads is built into the model when it counts channels/features and the model
  builds weighted layers (SqueezeNet's `input_channels = 3`), or when Model's constructor has a parameter of
  that name with a default it keeps (CViT's `image_size=32`, Swin's `img_size=224` for `image_size`);
- an element below 4 of a shape tuple stays: 1 is a broadcast dimension and 2-3 is an image's channel count
  that the first layer has built in (`input_shape = (3, 240, 240)`).
"""
from __future__ import annotations

import re

DIVISORS = r"^(num_)?groups$|^(num_|n_|n)?heads?$|patch_size|block_len|chunk"
NOT_SIZES: tuple[tuple[str, str], ...] = (
    (r"kernel|stride|padding|dilation|pool_size|window",
     "window geometry (kernel_size, stride, padding, output_padding, dilation, pool sizes): it defines the "
     "operation, and the input must stay at least as large as the window"),
    (DIVISORS,
     "divisors (groups, num_groups, heads, nhead, patch_size, block_len): channels, embeddings and lengths must "
     "stay multiples of them, so they stay and the sizes they divide are kept multiples of them (constraints.py)"),
    (r"layers$|^stages$|blocks$|ratio$",
     "structure (num_layers, layers, stages, expand_ratio): counts of blocks and expansion ratios change the "
     "network, not the extent of a tensor"),
    (r"scal|factor|divis|divide|multipl|clamp|hardtanh|(^|_)(min|max)(_value)?$|(^|_)(eps|alpha|beta|p)$"
     r"|momentum|slope|drop",
     "scalars that may be written as integers (scaling_factor = 2, divisor = 2, hardtanh_max = 2, eps, "
     "momentum, negative_slope, alpha, beta, p, dropout): they change values, not shapes"),
)
_AXIS = r"^(dim|axis)$|_(dim|axis)$"
_MAX_AXIS = 8  # `dim = 1` is an axis; `dim = 16384` an extent; no tensor in KernelBench has 8 dimensions
CHANNELS = r"channel|feature"
_MIN_TUPLE_SIZE = 4  # (batch_size, 3, 224, 224): the 3 is RGB, built into the first convolution


def not_a_size(name: str) -> str | None:
    """Why the constant `name` is never a size, or None when its name allows one."""
    lowered = name.lower()
    for pattern, reason in NOT_SIZES:
        if re.search(pattern, lowered):
            return reason
    return None


def is_size(name: str, value: object, *, read_by_model: bool = False, built_into_model: bool = False,
            in_tuple: bool = False) -> bool:
    """Whether `value` (one constant, or one element of a tuple constant called `name`) is a size that the
    second shape changes. See the module docstring for the rule."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 2:
        return False
    lowered = name.lower()
    if not_a_size(name):
        return False
    if re.search(_AXIS, lowered) and value < _MAX_AXIS:
        return False
    if lowered == "depth" and read_by_model:
        return False
    if built_into_model:
        return False
    return not (in_tuple and value < _MIN_TUPLE_SIZE)


def is_positive_size(name: str, value: object) -> bool:
    """A constant whose value must stay a positive integer under --set: a size by name, positive now."""
    return (isinstance(value, int) and not isinstance(value, bool) and value >= 1 and not_a_size(name) is None
            and not (re.search(_AXIS, name.lower()) and value < _MAX_AXIS))


def second_value(value: int, multiple: int = 1) -> int:
    """An odd value about half as large as `value` (a missing tail mask then shows), or an odd number of
    `multiple`s when the model needs one (channels of a grouped convolution, an embedding split into heads).

    Values below 4 grow instead (2 -> 3, 3 -> 5): halving would reach the broadcast size 1; 2 or 3 multiples
    become one, and one multiple cannot change. Equal values get equal results, so sizes that must match (a
    batch and an element of input_shape) still do, unless the model needs one of them to be a multiple."""
    if value % multiple:
        multiple = 1  # the problem as written breaks the rule read from its model: do not enforce it
    units = value // multiple
    if units < 4:
        if multiple > 1:
            return multiple
        return value + 1 if value % 2 == 0 else value + 2
    half = units // 2
    return (half if half % 2 else half + 1) * multiple
