"""A first kernel no model wrote (`solve SPEC`: the attention generator's), verified and recorded like any attempt."""
from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from ..attention.spec import MODS, AttentionSpec, is_spec, load_spec, top_level_names
from ..problem import Problem, ProblemError, load_problem
from ..verify.verdict import Status, Verdict
from .archive import Archive
from .run_dir import RunDir, RunDirError, Settings

# The seed's attempt: its own strategy, in lane 0 at step 0, before that lane's first model step (step 1), so that
# the lanes' steps line up as in a search without one; it is not a model attempt, so --max-attempts does not count it.
SEED_STRATEGY, SEED_LANE, SEED_STEP = "generated", 0, 0


@dataclass(frozen=True)
class Seed:
    code: str
    origin: str  # what wrote it, in words: the store keeps it as the attempt's prompt and note (no model was asked)


def problem_or_spec(path: str, overrides: dict[str, str]) -> tuple[Problem | None, AttentionSpec | None]:
    """What `solve PATH` searches: a KernelBench problem, or an attention spec (attention.spec.is_spec); a file
    that is neither is refused naming both."""
    if is_spec(path):
        return None, load_spec(path)
    names = top_level_names(path)
    if names and "Model" not in names:
        raise ProblemError(f"{path} is neither a KernelBench problem (it defines no Model) nor an attention spec "
                           f"(it defines no {' or '.join(MODS)})")
    return load_problem(path, overrides), None


def spec_search(spec: AttentionSpec, run: RunDir, settings: Settings, device: str,
                dtype_given: bool) -> tuple[Problem, Seed | None]:
    """An attention spec as a search: its problem (workflow.spec_problem) written to the run's problem.py, the
    second shape changing only the attention sizes, at that shape's dtype unless --dtype was given, and the
    generated kernel as the seed (None, said in one line, when the generator cannot translate the mods)."""
    from ..attention.workflow import SIZE_CONSTANTS, spec_problem  # torch stays out of a search without a spec

    found = spec_problem(spec, device)
    run.path.mkdir(parents=True, exist_ok=True)
    run.problem_file.write_text(found.source)
    problem = load_problem(run.problem_file, settings.overrides)
    problem.name = spec.name
    settings.variant_names = sorted(SIZE_CONSTANTS)
    if not dtype_given:
        settings.search.dtype = found.shape.dtype
    name = Path(spec.path).name
    if found.kernel is None:
        print(f"kernelsearch: no generated kernel to start from ({found.untranslated}); the model starts from "
              f"nothing", file=sys.stderr, flush=True)
        return problem, None
    seed = Seed(found.kernel.source, f"generated from {name} by the attention generator (no model call)")
    run.seed.write_text(json.dumps(asdict(seed)))  # for a --resume of a run stopped before its seed was verified
    return problem, seed


def unplanted(run: RunDir) -> Seed | None:
    """On --resume: the run's seed when no verification of it finished (the run was stopped before or during it),
    so that it is planted now; else None (planted already, or a run without one)."""
    if not run.seed.is_file() or any(a.strategy == SEED_STRATEGY and a.status not in (Status.CANCELLED,
                                                                                       Status.PENDING)
                                     for a in run.attempts()):
        return None
    try:
        return Seed(**json.loads(run.seed.read_text()))
    except (ValueError, TypeError) as e:  # not JSON, or not a seed's fields
        raise RunDirError(f"{run.seed} is damaged ({type(e).__name__}: {str(e)[:100]})") from None


def holds_seed(archive: Archive) -> bool:
    """Whether the seed passed: then every lane starts from it (steer.plan_attempt), not only its own lane 0."""
    return any(e.strategy == SEED_STRATEGY for e in archive.entries)


def say_failed(verdict: Verdict) -> None:
    """One line when the seed fails verification (lanes.Search.plant): the model starts from nothing."""
    first = verdict.message.splitlines()[0][:160] if verdict.message else ""
    print(f"kernelsearch: the generated kernel failed verification ({verdict.status}{': ' if first else ''}"
          f"{first}); the model starts from nothing", file=sys.stderr, flush=True)
