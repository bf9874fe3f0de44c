"""Tensors the mods read, found by identity wherever the mods reach them: closure cells (attention-gym's
factories, and_masks/or_masks) and the globals their code names. Each becomes one explicit kernel argument, and
the reference rebinds its places to tensors on the inputs' device for the duration of a call.

This file's source is copied into generated problem files (beside reference.py): it imports only torch and the
standard library, and has no `from __future__` import."""
import contextlib
import functools
import keyword
import types

import torch

# Names the generated file uses for its own variables and parameters: a capture called one of these is renamed.
TAKEN_NAMES = frozenset({"q", "k", "v", "b", "h", "q_idx", "kv_idx", "score", "sm_scale", "return_lse", "config",
                         "block_index", "qk", "captures", "torch", "triton", "tl", "math", "nn"})


class FoundTensor:
    """One tensor object the mods can reach, under one name, with every place that holds it."""

    def __init__(self, name, tensor):
        self.name, self.tensor = name, tensor
        self.places = []  # closure cells, or (namespace dict, key)


def find_tensors(*mods):
    """Every tensor the mods reach, one entry per tensor object, in a fixed order: the mods in the order given,
    each function's closure cells before the globals its code names, depth first into functions, and into tuples
    and lists of functions (how and_masks/or_masks hold their mods)."""
    found, names, walked = {}, set(), set()

    def record(tensor, name, place):
        if id(tensor) not in found:
            plain = name.isidentifier() and not keyword.iskeyword(name) and name not in TAKEN_NAMES
            unique = name if plain else f"cap_{name}"
            base, n = unique, 2
            while unique in names:
                unique, n = f"{base}_{n}", n + 1
            names.add(unique)
            found[id(tensor)] = FoundTensor(unique, tensor)
        found[id(tensor)].places.append(place)

    def visit(value, name, place):
        if isinstance(value, torch.Tensor):
            record(value, name, place)
        elif isinstance(value, (tuple, list)):
            for item in value:
                if callable(item) and not isinstance(item, type):
                    walk(item)
        elif callable(value) and not isinstance(value, type):
            walk(value)

    def walk(fn):
        if id(fn) in walked:
            return
        walked.add(id(fn))
        if isinstance(fn, functools.partial):
            walk(fn.func)
            return
        code = getattr(fn, "__code__", None)
        if not isinstance(code, types.CodeType):
            return
        for name, cell in zip(code.co_freevars, getattr(fn, "__closure__", None) or ()):
            try:
                value = cell.cell_contents
            except ValueError:  # a cell not filled yet
                continue
            visit(value, name, cell)
        namespace = getattr(fn, "__globals__", {})
        for name in _global_names(code):
            if name in namespace:
                visit(namespace[name], name, (namespace, name))

    for mod in mods:
        if mod is not None:
            walk(mod)
    return list(found.values())


def _global_names(code):
    """Names the code (and the functions defined inside it) may read as globals, in order, once each."""
    names = list(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names.extend(_global_names(const))
    return list(dict.fromkeys(names))


def _read(place):
    return place.cell_contents if isinstance(place, types.CellType) else place[0][place[1]]


def _write(place, value):
    if isinstance(place, types.CellType):
        place.cell_contents = value
    else:
        place[0][place[1]] = value


def rebind(found, tensors):
    """Point every place of each found tensor at tensors[name] (e.g. the same values on the GPU)."""
    for item in found:
        for place in item.places:
            _write(place, tensors[item.name])


@contextlib.contextmanager
def bound(found, tensors):
    """rebind() for the duration of a block; the places hold their own tensors again afterwards."""
    saved = [(place, _read(place)) for item in found for place in item.places]
    try:
        rebind(found, tensors)
        yield
    finally:
        for place, value in saved:
            _write(place, value)
