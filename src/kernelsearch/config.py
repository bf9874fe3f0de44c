"""Run configuration: defaults, then a TOML file ([model] and [search] tables), then command-line flags."""
from __future__ import annotations

import re
import tomllib
from dataclasses import fields
from pathlib import Path

from .limits import count_problem, positive_problem
from .llm.client import ModelConfig
from .search.solve_config import SolveConfig
from .verify.tolerance import ToleranceError, check_settings
from .verify.verdict import RULES

# The settings held to a rule of limits.py, whether a flag or the --config file gives them (ModelConfig's and
# SolveConfig's fields by name).
LIMITS = {"lanes": count_problem, "trials": count_problem, "max_attempts": count_problem,
          "max_tokens": count_problem, "concurrency": count_problem, "budget_s": positive_problem,
          "target_speedup": positive_problem, "compile_timeout_s": positive_problem,
          "run_timeout_s": positive_problem, "timeout_s": positive_problem, "connect_timeout_s": positive_problem}
TYPE_WORDS = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string"}


class ConfigError(ValueError):
    pass


def parse_duration(text: str | float) -> float:
    """Seconds from `90`, `90s`, `15m` or `1.5h`."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", str(text))
    if not match:
        raise ConfigError(f"cannot read the duration {text!r}: use seconds or minutes, like 90s or 15m")
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]


def parse_prices(text: str | None) -> tuple[float, float] | None:
    """`0.55,2.19` -> dollars per million input and output tokens."""
    if not text:
        return None
    try:
        low, high = (float(x) for x in text.split(","))
    except ValueError:
        raise ConfigError(f"--price takes IN,OUT dollars per million tokens, like 0.55,2.19; got {text!r}") from None
    return low, high


def read_table(config_file: str | None) -> dict:
    """The --config file's tables ({} without one); a missing file, bad TOML or an unknown table is a ConfigError."""
    if not config_file:
        return {}
    path = Path(config_file)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        table = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: {e}") from None
    unknown = set(table) - {"model", "search"}
    if unknown:
        raise ConfigError(f"{path}: unknown table(s) {', '.join(sorted(unknown))} (use [model] and [search])")
    return table


def build(config_file: str | None, model_flags: dict, search_flags: dict) -> tuple[ModelConfig, SolveConfig]:
    """Flags left at None do not override the file; the file's unknown keys are errors, not silently ignored."""
    return build_from(read_table(config_file), config_file, model_flags, search_flags)


def chosen(table: dict, search_flags: dict) -> set[str]:
    """The search settings the user chose, in the file's [search] or as flags, rather than left at their defaults."""
    return set(table.get("search", {})) | {name for name, value in search_flags.items() if value is not None}


def build_from(table: dict, config_file: str | None, model_flags: dict,
               search_flags: dict) -> tuple[ModelConfig, SolveConfig]:
    """build() on a file's tables already read (read_table)."""
    model = _merge(ModelConfig, table.get("model", {}), model_flags, config_file)
    search = _merge(SolveConfig, table.get("search", {}), search_flags, config_file)
    if isinstance(search.budget_s, str):
        search.budget_s = parse_duration(search.budget_s)
    if "budget" in table.get("search", {}) and search_flags.get("budget_s") is None:
        search.budget_s = parse_duration(table["search"]["budget"])
    check_limits(model, _naming(config_file, "model", table.get("model", {})))
    check_limits(search, _naming(config_file, "search", table.get("search", {})))
    try:
        check_settings(search.tolerance, search.atol, search.rtol)
    except ToleranceError as e:
        raise ConfigError(str(e)) from None
    if search.rules not in RULES:
        raise ConfigError(f"{_naming(config_file, 'search', table.get('search', {}))('rules')}: must be one of "
                          f"{', '.join(RULES)}, got {search.rules!r}")
    return model, search


def flag_name(field: str) -> str:
    """The command-line flag of a setting: budget_s -> --budget, max_attempts -> --max-attempts."""
    return "--" + field.removesuffix("_s").replace("_", "-")


def check_limits(config, name=flag_name) -> None:
    """Each field of `config` (a ModelConfig or SolveConfig) of its type and within its LIMITS rule; else a
    ConfigError that calls the setting `name(field)`: where it came from."""
    for f in fields(config):
        value = getattr(config, f.name)
        problem = _type_problem(str(f.type), value)
        if problem is None and value is not None and f.name in LIMITS:
            problem = LIMITS[f.name](value)
        if problem:
            raise ConfigError(f"{name(f.name)}: {problem}")


def _naming(config_file: str | None, table: str, from_file: dict):
    def name(field: str) -> str:
        key = "budget" if field == "budget_s" and "budget" in from_file else field
        return f"{config_file}: [{table}] {key}" if key in from_file else flag_name(field)
    return name


def _type_problem(annotation: str, value) -> str | None:
    """What is wrong with a value a file gave for a field annotated `annotation` ("int", "float | None", ...)."""
    kinds = [k.strip() for k in annotation.split("|")]
    if value is None:
        return None if "None" in kinds else "must be set"
    fits = {"int": isinstance(value, int) and not isinstance(value, bool),
            "float": isinstance(value, (int, float)) and not isinstance(value, bool),
            "bool": isinstance(value, bool), "str": isinstance(value, str)}
    known = [k for k in kinds if k in fits]
    if known and not any(fits[k] for k in known):
        return f"must be {' or '.join(TYPE_WORDS[k] for k in known)}, got {value!r}"
    return None


def _merge(cls, from_file: dict, flags: dict, where: str | None):
    names = {f.name for f in fields(cls)}
    extra = set(from_file) - names - {"budget"}
    if extra:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(extra))}; known: {', '.join(sorted(names))}")
    values = {k: v for k, v in from_file.items() if k in names}
    values.update({k: v for k, v in flags.items() if v is not None})
    return cls(**values)
