"""What the generator translates: torch operations a mod may use -> Triton (kernel) and torch (host) code."""
from __future__ import annotations

import math
import operator

import torch

BINARY = {
    operator.add: "+", operator.sub: "-", operator.mul: "*", operator.truediv: "/", operator.floordiv: "//",
    operator.mod: "%", operator.and_: "&", operator.or_: "|", operator.xor: "^", operator.lt: "<",
    operator.le: "<=", operator.gt: ">", operator.ge: ">=", operator.eq: "==", operator.ne: "!=",
    torch.add: "+", torch.sub: "-", torch.mul: "*", torch.div: "/", torch.logical_and: "&", torch.logical_or: "|",
    torch.lt: "<", torch.le: "<=", torch.gt: ">", torch.ge: ">=", torch.eq: "==", torch.ne: "!=",
    torch.bitwise_and: "&", torch.bitwise_or: "|",
}
METHOD_BINARY = {"add": "+", "sub": "-", "mul": "*", "div": "/", "__and__": "&", "__or__": "|", "lt": "<",
                  "le": "<=", "gt": ">", "ge": ">=", "eq": "==", "ne": "!=", "logical_and": "&", "logical_or": "|"}
# name -> (triton template, torch template); {0} is the argument
UNARY = {
    "exp": ("tl.exp({0})", "torch.exp({0})"), "exp2": ("tl.exp2({0})", "torch.exp2({0})"),
    "log": ("tl.log({0})", "torch.log({0})"), "log2": ("tl.log2({0})", "torch.log2({0})"),
    "sqrt": ("tl.sqrt({0})", "torch.sqrt({0})"), "sin": ("tl.sin({0})", "torch.sin({0})"),
    "cos": ("tl.cos({0})", "torch.cos({0})"), "abs": ("tl.abs({0})", "torch.abs({0})"),
    "sigmoid": ("tl.sigmoid({0})", "torch.sigmoid({0})"),
    # tanh through exp: libdevice's tanh is not reachable the same way on every Triton version.
    "tanh": ("(1.0 - 2.0 / (tl.exp(2.0 * ({0})) + 1.0))", "torch.tanh({0})"),
    "neg": ("-({0})", "-({0})"), "logical_not": ("({0}) == 0", "torch.logical_not({0})"),
    "float": ("({0}).to(tl.float32)", "({0}).float()"),
}
FUNCTIONS = {getattr(torch, n): n for n in UNARY if hasattr(torch, n)}
FUNCTIONS.update({abs: "abs", operator.neg: "neg", operator.abs: "abs", math.exp: "exp"})
COMPARISONS = {"<", "<=", ">", ">=", "==", "!="}
