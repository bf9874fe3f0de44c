"""Where and how an output is wrong, gathered a chunk at a time: count, first wrong element, per-dimension range,
whole wrong rows, NaN/Inf where the reference has none, and simple patterns (a scale factor, a transpose)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from . import chunks


@dataclass
class WrongElements:
    """What the chunks seen so far say about the wrong elements of one output."""
    shape: tuple[int, ...]
    wrong: int = 0
    first: int | None = None  # flat index of the first wrong element, with the values there
    first_got: object = None
    first_expected: object = None
    lo: list[int] = field(init=False)  # per dimension, the lowest and highest index of a wrong element
    hi: list[int] = field(init=False)
    whole_rows: int = 0  # rows (last dim) wrong in every element
    row_all_wrong: bool = False  # the row in progress, when rows are longer than a chunk
    nan: int = 0  # NaN / Inf in the output where the reference has none
    inf: int = 0

    def __post_init__(self):
        self.lo, self.hi = list(self.shape), [-1] * len(self.shape)

    def add(self, offset: int, bad: torch.Tensor, o: torch.Tensor, r: torch.Tensor) -> None:
        """One chunk starting at flat index `offset`: `bad` marks its wrong elements, `o`/`r` its widened values."""
        self.nan += int((torch.isnan(o) & ~torch.isnan(r)).sum())
        self.inf += int((torch.isinf(o) & ~torch.isinf(r)).sum())
        flat = torch.nonzero(bad).flatten()
        if len(self.shape) >= 2:
            self._count_whole_rows(offset, bad, has_wrong=flat.numel() > 0)
        if flat.numel() == 0:
            return
        self.wrong += flat.numel()
        if self.first is None:
            local = int(flat[0])
            self.first, self.first_got, self.first_expected = offset + local, _num(o[local]), _num(r[local])
        flat = flat + offset
        stride = 1
        for d in reversed(range(len(self.shape))):
            along = (flat // stride) % self.shape[d]
            self.lo[d], self.hi[d] = min(self.lo[d], int(along.min())), max(self.hi[d], int(along.max()))
            stride *= self.shape[d]

    def _count_whole_rows(self, offset: int, bad: torch.Tensor, has_wrong: bool) -> None:
        row = self.shape[-1]
        if row == 0:
            return
        if offset % row == 0 and bad.numel() % row == 0:  # chunks of whole rows: rows no longer than a chunk
            if has_wrong:
                self.whole_rows += int(bad.view(-1, row).all(dim=1).sum())
            return
        if not has_wrong:  # a row longer than a chunk, right somewhere in this chunk
            self.row_all_wrong = False
            return
        position = 0
        while position < bad.numel():  # the pieces of the rows this chunk touches (one, as chunks.blocks cuts)
            column = (offset + position) % row
            take = min(bad.numel() - position, row - column)
            piece_all_wrong = bool(bad[position:position + take].all())
            self.row_all_wrong = piece_all_wrong if column == 0 else self.row_all_wrong and piece_all_wrong
            if column + take == row and self.row_all_wrong:
                self.whole_rows += 1
            position += take

    def report(self, out: torch.Tensor, ref: torch.Tensor) -> dict:
        """The mismatch report, once every chunk was added (`out`/`ref` for one more pass looking for patterns)."""
        n_bad, total, shape = self.wrong, out.numel(), self.shape
        first = _unravel(self.first, shape)
        report = {
            "wrong": n_bad, "total": total, "fraction_wrong": n_bad / total, "first_wrong_index": list(first),
            "first_wrong_value": self.first_got, "first_wrong_expected": self.first_expected,
            "nan": self.nan, "inf": self.inf, "hints": [],
        }
        hints = report["hints"]
        if len(shape) >= 1 and n_bad < total:
            for d, size in enumerate(shape):
                lo, hi = self.lo[d], self.hi[d]
                if size > 1 and (lo > 0 or hi < size - 1):
                    hints.append(f"along dim {d} (size {size}) only indices {lo}..{hi} are wrong")
        if len(shape) >= 2 and self.whole_rows:
            hints.append(f"{self.whole_rows} of {total // shape[-1]} rows (last dim) are wrong in every element")
        if report["nan"]:
            hints.append(f"{report['nan']} elements are NaN where the reference is not: unwritten output "
                         "(the verifier fills free memory with NaN) or a division by zero")
        hints.extend(pattern_hints(out, ref))
        where = ", ".join(map(str, first))
        summary = (f"{n_bad} of {total} elements wrong ({100 * n_bad / total:.3g}%); first at [{where}]: "
                   f"got {report['first_wrong_value']}, expected {report['first_wrong_expected']}")
        if hints:
            summary += "; " + "; ".join(hints)
        report["summary"] = summary
        return report


def pattern_hints(out: torch.Tensor, ref: torch.Tensor) -> list[str]:
    """A scale factor off, or a transposed result: one more pass over the chunks, made only for a wrong output."""
    if out.is_complex():
        return []
    hints = []
    ratio = _uniform_ratio(out, ref)
    if ratio is not None:
        hints.append(f"output is {ratio:.6g} x the reference everywhere: a scale factor is off")
    if out.ndim == 2 and out.shape[0] == out.shape[1] and out.shape[0] > 1 and _equals_transpose(out, ref):
        hints.append("output equals the transposed reference")
    return hints


def _uniform_ratio(out: torch.Tensor, ref: torch.Tensor) -> float | None:
    """out / ref where that is one number away from 1 (within 1e-3) over every finite element with |ref| > 1e-3.
    The median comes from the first chunk's worth of such elements, the range from all of them."""
    count, low, high, sample, sampled = 0, math.inf, -math.inf, [], 0
    for _, o, r in chunks.pairs(out, ref):
        o, r = chunks.wide(o), chunks.wide(r)
        keep = torch.isfinite(o) & torch.isfinite(r) & (r.abs() > 1e-3)
        ratio = o[keep] / r[keep]
        if ratio.numel() == 0:
            continue
        count += ratio.numel()
        low, high = min(low, float(ratio.min())), max(high, float(ratio.max()))
        if sampled < chunks.CHUNK_ELEMENTS:
            sample.append(ratio[:chunks.CHUNK_ELEMENTS - sampled])
            sampled += sample[-1].numel()
    if count <= 8:
        return None
    median = float(torch.cat(sample).median())
    if abs(median - 1) > 1e-2 and max(high - median, median - low) < 1e-3 * max(1.0, abs(median)):
        return median
    return None


def _equals_transpose(out: torch.Tensor, ref: torch.Tensor) -> bool:
    """out == ref.T within 1e-3 (square 2-D outputs), a band of rows at a time."""
    n = out.shape[0]
    rows = max(1, chunks.CHUNK_ELEMENTS // n)
    for start in range(0, n, rows):
        o = chunks.wide(out[start:start + rows])
        r = chunks.wide(ref[:, start:start + rows].T.to(o.device))
        if not torch.allclose(o, r, atol=1e-3, rtol=1e-3):
            return False
    return True


def _unravel(flat: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    index = []
    for size in reversed(shape):
        index.append(flat % size)
        flat //= size
    return tuple(reversed(index))


def _num(t: torch.Tensor) -> float | int | bool:
    value = t.item()
    return value if not isinstance(value, float) or math.isfinite(value) else str(value)
