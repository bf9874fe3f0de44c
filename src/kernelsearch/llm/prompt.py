"""Prompts from the template files in prompts/: the problem, the rules, the best kernel, the last verdict."""
from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from string import Template

from ..verify.tolerance import DEFAULT_PROFILE, Tolerance, resolve_tolerance, short_number
from ..verify.verdict import Verdict, format_verdict

LANGUAGES = {"triton": "Triton", "cuda": "CUDA C++ (torch.utils.cpp_extension.load_inline)"}
MAX_REPORT_LINES = 40  # a compile log runs to hundreds of lines; the first errors are what the model needs


@cache
def template(name: str) -> str:
    return resources.files("kernelsearch.llm").joinpath("prompts").joinpath(name).read_text()


@dataclass(frozen=True)
class Strategy:
    name: str
    title: str
    text: str
    after: tuple[str, ...]
    language: str | None = None


@cache
def strategies() -> dict[str, Strategy]:
    table = tomllib.loads(template("strategies.toml"))
    return {name: Strategy(name, s["title"], s["text"].strip(), tuple(s["after"]), s.get("language"))
            for name, s in table.items()}


@dataclass
class Previous:
    """The attempt the next prompt answers: its strategy, its code (if any) and what the verifier said."""
    strategy: str
    code: str | None
    verdict: Verdict | None = None
    problem: str = ""  # why there was nothing to verify (no code, a failed model call)


def build_prompt(problem_source: str, *, language: str, dtype: str, device: str, strict: bool, strategy: Strategy,
                 best: tuple[str, str] | None = None, previous: Previous | None = None,
                 tolerance: Tolerance | None = None) -> str:
    """The user turn for one attempt. `best` is (source, one-line summary) of the best verified kernel;
    `tolerance` the one in force (default: the default profile's for `dtype`)."""
    tolerance = tolerance or resolve_tolerance(DEFAULT_PROFILE, dtype)
    best_section = ""
    if best:
        best_section = Template(template("best.md")).substitute(best_source=best[0].strip(), best_summary=best[1])
    feedback_section = ""
    if previous is not None:
        code_section = ""
        if previous.code and (best is None or previous.code != best[0]):  # the best is shown already
            code_section = f"\nYour previous code:\n\n```python\n{previous.code.strip()}\n```\n"
        report = format_verdict(previous.verdict) if previous.verdict else previous.problem
        feedback_section = Template(template("feedback.md")).substitute(
            previous_strategy=strategies()[previous.strategy].title if previous.strategy in strategies()
            else previous.strategy,
            verdict_report=cut_report(report), previous_code_section=code_section)
    return Template(template("attempt.md")).substitute(
        language_name=LANGUAGES[language], device=device, problem_source=problem_source.strip(),
        tolerance=tolerance_text(tolerance), dtype=dtype, language_rules=template(f"rules_{language}.md").strip(),
        strict_note=" only without --strict (this run is strict: every compute op must be yours)" if strict else "",
        best_section=best_section, feedback_section=feedback_section,
        strategy_title=strategy.title, strategy_text=strategy.text)


def tolerance_text(t: Tolerance) -> str:
    """`atol = rtol = 1e-4 (the kernelbench profile for fp32)`: what the model is told its outputs must meet."""
    values = (f"atol = rtol = {short_number(t.atol)}" if t.atol == t.rtol
              else f"atol = {short_number(t.atol)}, rtol = {short_number(t.rtol)}")
    return f"{values} (the {t.profile} profile for {t.dtype})"


def cut_report(text: str, limit: int = MAX_REPORT_LINES) -> str:
    """Keep a long report readable: the lines that name an error, with a line of context, then the tail."""
    lines = text.splitlines()
    if len(lines) <= limit:
        return text
    keep = set(range(4))  # the status line and the verifier's message
    for i, line in enumerate(lines):
        if "error" in line.lower() or "Error" in line:
            keep |= {i - 1, i, i + 1}
    keep |= set(range(len(lines) - 6, len(lines)))
    chosen = sorted(i for i in keep if 0 <= i < len(lines))[:limit]
    out, last = [], -1
    for i in chosen:
        if i != last + 1:
            out.append("    ...")
        out.append(lines[i])
        last = i
    return "\n".join(out)
