"""Prompts from the template files in prompts/: the problem, the rules, the best kernel, the last verdict."""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, replace
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
    needs: tuple[str, ...] = ()  # problem traits of which one must be present (none: always offered)
    bounds: tuple[str, ...] = ()  # the measured limits (memory, compute, launch) an optimization answers
    met_by: str | None = None  # a goal which, when the kernel to improve meets it, makes the strategy moot


@cache
def strategies() -> dict[str, Strategy]:
    table = tomllib.loads(template("strategies.toml"))
    return {name: Strategy(name, s["title"], s["text"].strip(), tuple(s["after"]), s.get("language"),
                           tuple(s.get("needs", ())), tuple(s.get("bounds", ())), s.get("met_by"))
            for name, s in table.items()}


@cache
def precision_notes() -> dict:
    return tomllib.loads(template("precision.toml"))


@dataclass
class Previous:
    """The attempt the next prompt answers: its strategy, its code (if any) and what the verifier said."""
    strategy: str
    code: str | None
    verdict: Verdict | None = None
    problem: str = ""  # why there was nothing to verify (no code, a failed model call, a duplicate)
    attempt_id: int | None = None  # the attempt in the store (a fix's base)
    status: str = ""  # set where it is not the verdict's: no_code, duplicate


def build_prompt(problem_source: str, *, language: str, dtype: str, device: str, strict: bool, strategy: Strategy,
                 best: tuple[str, str] | None = None, previous: Previous | None = None,
                 tolerance: Tolerance | None = None, problem_notes: str = "", parent_heading: str = "",
                 parent_notes: str = "", previous_notes: str = "", cpu: bool | None = None,
                 fusion_rule: str = "", pass_rule: str = "", tried_elsewhere: list[str] = (),
                 products: bool = True) -> str:
    """The user turn for one attempt. `best` is (source, one-line summary) of the kernel to build on (the best
    verified one unless `parent_heading` says otherwise); `tolerance` the one in force (default: the default
    profile's for `dtype`), stated once. `problem_notes` follow the problem (its profile, `size_note`), the
    notes of the kernel to build on and of the previous attempt follow them (search.feedback's timing lines).
    `cpu` (default: read from `device`) says up front, once, that nothing is timed here (and adds the hint for a
    failure only the interpreter gives); `fusion_rule` and `pass_rule` are the problem's (search.problem_profile);
    `tried_elsewhere`, one line per design other lanes tried, lets this one choose another. `products`: the
    problem has matrix products or convolutions (then an fp32 Triton prompt says what `tl.dot` does to fp32)."""
    tolerance = tolerance or resolve_tolerance(DEFAULT_PROFILE, dtype)
    if cpu is None:
        cpu = device.lower().startswith("cpu")
    best_section = ""
    if best:
        best_section = Template(template("best.md")).substitute(
            best_source=best[0].strip(), parent_heading=parent_heading or f"The best verified kernel so far "
                                                                           f"({best[1]})",
            parent_notes=_block(parent_notes, before="\n"))
    feedback_section = ""
    if previous is not None:
        code_section = ""
        if previous.code and (best is None or previous.code != best[0]):  # the kernel to build on is shown already
            code_section = f"\nYour previous code:\n\n```python\n{previous.code.strip()}\n```\n"
        report = previous.problem
        if previous.verdict:  # the tolerance and the --set changes are said once, above, not in every verdict
            report = format_verdict(replace(previous.verdict, overrides={}, tolerance="", checks={
                k: c for k, c in previous.verdict.checks.items() if k != "roofline"}))  # previous_notes say it
            report += f"\n{previous.problem}" if previous.problem else ""
        hint = interpreter_hint(report) if cpu and language == "triton" and previous.verdict else ""
        feedback_section = Template(template("feedback.md")).substitute(
            previous_strategy=strategies()[previous.strategy].title if previous.strategy in strategies()
            else previous.strategy,
            verdict_report=cut_report(report) + (f"\n\n{hint}" if hint else ""), previous_code_section=code_section,
            previous_notes=_block(previous_notes, before="\n"))
    return Template(template("attempt.md")).substitute(
        language_name=LANGUAGES[language], judged=judged(device, language, cpu), problem_source=problem_source.strip(),
        problem_notes=_block(problem_notes, before="\n"),
        tolerance=tolerance_text(tolerance), dtype=dtype, language_rules=language_rules(language, dtype, products),
        strict_note=" only without --strict (this run is strict: every compute op must be yours)" if strict else "",
        best_section=best_section, feedback_section=feedback_section,
        tried_section=Template(template("tried.md")).substitute(designs="\n".join(
            f"- {line}" for line in tried_elsewhere)) if tried_elsewhere else "",
        strategy_title=strategy.title, strategy_text=strategy_text(strategy, tolerance, language, fusion_rule,
                                                                   pass_rule, cpu))


def language_rules(language: str, dtype: str, products: bool) -> str:
    rules = template(f"rules_{language}.md").strip()
    if language == "triton" and dtype == "fp32" and products:
        rules += "\n" + precision_notes()["dot"]["triton"].strip()
    return rules


def judged(device: str, language: str, cpu: bool | None = None) -> str:
    """How the kernel is judged: on a GPU for correctness then speed; on a CPU for correctness alone (Triton in
    the interpreter; CUDA only compiled), with nothing timed - said once, in the prompt's first lines."""
    if cpu is None:
        cpu = device.lower().startswith("cpu")
    name = f"judged_cpu_{language}.md" if cpu else "judged_gpu.md"
    return Template(template(name)).substitute(device=device).strip()


LOOSE_FOR_TF32 = 1e-2  # TF32 rounds each input to ~5e-4 relative; tolerances from 1e-2 up absorb that
# The fuse strategy's rule where the problem's profile gives none (search.problem_profile: fusion_rule).
GENERIC_FUSION_RULE = ("the elementwise work that follows a product, a convolution or a reduction belongs in the "
                       "kernel that produces its input")


# The one-pass strategies' rule where the problem's profile gives none (search.problem_profile: pass_rule).
GENERIC_PASS_RULE = ("where the kernel reads its input a second time (once for a statistic, once to apply it), keep "
                     "the data in registers between the two, or use an online formulation (a running max and sum "
                     "for softmax-like work)")
# How the tune strategy chooses launch parameters: the Triton interpreter of a CPU run fails on an autotuner of
# more than one config ("RuntimeError: 0 active drivers", seen in a relay run on KernelBench L1 36).
LAUNCH_CHOICE = {
    ("triton", False): "you may use `triton.autotune` over a few configs, keyed on the sizes",
    ("triton", True): "computed in `forward` from the input sizes; no `triton.autotune`: this CPU run's Triton "
                      "interpreter cannot run an autotuner of several configs",
    ("cuda", False): "computed in `forward` from the input sizes",
}


def strategy_text(strategy: Strategy, tolerance: Tolerance, language: str, fusion_rule: str = "",
                  pass_rule: str = "", cpu: bool = False) -> str:
    """The strategy's text with the precision note for this tolerance and language, the problem's fusion and
    one-pass rules, and how to choose launch parameters on this device, where it asks for them."""
    if tolerance.dtype != "fp32":
        key = "half"
    else:
        key = "fp32_loose" if min(tolerance.atol, tolerance.rtol) >= LOOSE_FOR_TF32 else "fp32"
    return Template(strategy.text).safe_substitute(
        precision=precision_notes()[key][language].strip(), fusion_rule=fusion_rule or GENERIC_FUSION_RULE,
        pass_rule=pass_rule or GENERIC_PASS_RULE,
        launch_choice=LAUNCH_CHOICE[(language, cpu and language == "triton")])


@cache
def interpreter_quirks() -> dict:
    return tomllib.loads(template("interpreter.toml"))


def interpreter_hint(report: str) -> str:
    """The hint for a failure only the Triton interpreter gives (prompts/interpreter.toml), when the report shows
    one; else ""."""
    return next((q["hint"].strip() for q in interpreter_quirks().values() if q["error"] in report), "")


def size_note(overrides: dict) -> str:
    """Once per prompt, when --set (or a shrink) changed the problem: the original sizes are the target.
    `overrides` is Problem.overrides: NAME -> (old, new) as source text."""
    if not overrides:
        return ""
    changes = ", ".join(f"{name} = {new} (originally {old})" for name, (old, new) in overrides.items())
    ratios = [int(old) / int(new) for old, new in overrides.values() if old.isdigit() and new.isdigit() and int(new)]
    rounding = ROUNDING_NOTE.format(ratio=f"{max(ratios):.3g}") if ratios and max(ratios) > 1 else ""
    return Template(template("sizes.md")).substitute(changes=changes, rounding=rounding).strip("\n")


# The original sizes are checked at the same tolerance: a sum reordered against PyTorch's that passed on the shrunk
# sizes can fail there (relay run 2026-12-07, KernelBench L2 18: 7 of 8 attempts summed the weights before the
# product, passed at 512 features with errors of 6-8e-6 and failed at 8192 by 1.2-1.7e-4 on rows near 0).
ROUNDING_NOTE = (" There the same tolerance applies to dimensions up to {ratio}× longer, and a long sum's rounding "
                 "error grows with its length: a kernel whose sums run in another order than PyTorch's (reassociated, "
                 "split, or moved before a product) and whose errors here come near a tenth of the tolerance may "
                 "fail there, most on outputs near zero, where only the absolute tolerance is left. Accumulate such "
                 "sums wider (fp64, or compensated sums).")


def _block(text: str, before: str = "") -> str:
    """A note as a paragraph of its own, or nothing."""
    return f"{before}{text.strip()}\n" if text and text.strip() else ""


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
