"""Reading a model's answer: reasoning apart from the reply, and the candidate kernel out of the reply."""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass

_THINK_OPEN, _THINK_CLOSE = "<think>", "</think>"
# An opening fence: ``` or ~~~ with an optional language tag; its closing fence is the same characters.
_FENCE = re.compile(r"^[ \t]*(```+|~~~+)[ \t]*([\w+.-]*)[^\n]*$", re.MULTILINE)
_PYTHON_TAGS = {"", "python", "py", "python3", "triton"}


def split_reasoning(content: str, field_reasoning: str = "") -> tuple[str, str]:
    """(reasoning, answer). Providers send reasoning in a field (`reasoning_content`, `reasoning`) or inline as
    `<think>...</think>`; original R1 sometimes leaves out the opening tag, so a lone `</think>` ends reasoning."""
    reasoning = [field_reasoning.strip()] if field_reasoning.strip() else []
    answer = content
    if _THINK_CLOSE in answer:
        head, _, answer = answer.partition(_THINK_CLOSE)
        reasoning.append(head.replace(_THINK_OPEN, "", 1).strip())
    elif answer.lstrip().startswith(_THINK_OPEN):  # cut off while still thinking: no answer at all
        reasoning.append(answer.lstrip()[len(_THINK_OPEN):].strip())
        answer = ""
    return "\n\n".join(r for r in reasoning if r), answer.strip()


@dataclass
class Extracted:
    code: str | None
    note: str  # how the code was found, or why there is none (goes into the next prompt)


def extract_code(answer: str, truncated: bool = False) -> Extracted:
    """The candidate file in an answer: the fenced block that defines `ModelNew` (the last one when the model
    revised itself), joined with the other Python blocks when it leans on kernels defined there."""
    blocks, unclosed = _fenced_blocks(answer)
    python = [(tag, body) for tag, body in blocks if tag in _PYTHON_TAGS]
    defining = [body for _, body in python if _defines_model_new(body)]
    if defining:
        chosen = defining[-1]
        if _needs_others(chosen, [b for _, b in python if b is not chosen]):
            others = [b for _, b in python if b is not chosen and not _defines_model_new(b)]
            return Extracted("\n\n".join(others + [chosen]), f"joined {len(others) + 1} Python blocks")
        return Extracted(chosen, "the block that defines ModelNew" if len(blocks) > 1 else "the fenced block")
    if unclosed is not None:
        why = "the answer was cut off at max_tokens" if truncated else "a code block was never closed"
        return Extracted(None, f"{why}: the code is incomplete")
    if not blocks and _defines_model_new(answer):
        return Extracted(answer.strip(), "unfenced code")
    if truncated:
        return Extracted(None, "the answer was cut off at max_tokens before any code")
    if blocks:
        return Extracted(None, "no code block defines class ModelNew")
    return Extracted(None, "the answer has no code block")


def _fenced_blocks(text: str) -> tuple[list[tuple[str, str]], str | None]:
    """Closed fenced blocks as (language tag, body), and the body of a final block left open, if any."""
    blocks, pos = [], 0
    while True:
        start = _FENCE.search(text, pos)
        if not start:
            return blocks, None
        fence, tag = start.group(1), start.group(2).lower()
        close = re.compile(rf"^[ \t]*{re.escape(fence)}[ \t]*$", re.MULTILINE).search(text, start.end())
        if not close:
            return blocks, text[start.end():]
        blocks.append((tag, text[start.end():close.start()].strip("\n")))
        pos = close.end()


def _defines_model_new(code: str) -> bool:
    if "ModelNew" not in code:
        return False
    try:
        tree = ast.parse(code)
    except SyntaxError:  # still the model's code: let the verifier report the syntax error to the next prompt
        return re.search(r"^class\s+ModelNew\b", code, re.MULTILINE) is not None
    return any(isinstance(node, ast.ClassDef) and node.name == "ModelNew" for node in tree.body)


def _needs_others(chosen: str, others: list[str]) -> bool:
    """True when the chosen block uses a name that only another block defines (kernel and model split up)."""
    if not others:
        return False
    try:
        used = {n.id for n in ast.walk(ast.parse(chosen)) if isinstance(n, ast.Name)}
        defined_here = _top_level_names(chosen)
    except SyntaxError:
        return False
    defined_elsewhere = set()
    for body in others:
        try:
            defined_elsewhere |= _top_level_names(body)
        except SyntaxError:
            continue
    return bool((used - defined_here) & defined_elsewhere)


def _top_level_names(code: str) -> set[str]:
    names = set()
    for node in ast.parse(code).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return names
