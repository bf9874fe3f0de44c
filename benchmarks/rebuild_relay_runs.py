"""Rebuild, from benchmarks/export_relay_runs.py's export, run directories that `kernelsearch retime` and
benchmarks/attention_model_vs_flex.py accept: the relay runs of #26's sample (2026-12-07) were lost with the machine
they ran on, and the export kept what re-timing needs of them, each attempt's exact code and status.

    python3 benchmarks/rebuild_relay_runs.py EXPORT_DIR DEST_DIR    # EXPORT_DIR holds first/ and rerun/

Per problem the rerun (rerun/KEY: the sample run again after the loop's fixes) when there is one, else first/KEY.
What the export lacks is not made up: each attempt's verdict is its status and exported message only, its prompt a
line saying so, its wall-clock start, tokens and base attempt unknown (NULL where the store allows); config.json
and summary.json carry "rebuilt_from_export" (the source and the list of what is missing). problem.py is the
KernelBench file from kb/ (the same text the run copied) or, for an attention spec, its problem generated again.
Where EXPORT_DIR/retime-h100-partial/KEY.summary.json survives (the H100 re-time of 2026-12-07), it is that run's
summary as written, and best.py its best. Layout: DEST/retime26|retime26-done/problems/KEY (folders of
solve runs, re-timed as a bench) and DEST/attn26/KEY (the attention runs).
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
from kernelsearch.llm.client import ModelConfig  # noqa: E402
from kernelsearch.search.run_dir import RunDir, Settings, best_header  # noqa: E402
from kernelsearch.search.solve_config import SolveConfig  # noqa: E402
from kernelsearch.store import ELAPSED  # noqa: E402
from kernelsearch.verify.verdict import Verdict  # noqa: E402

GROUPS = {"retime26/problems": ["l1_40", "l1_63", "l1_95", "l2_12", "l2_18", "l2_29", "l2_37", "l2_52", "l2_76",
                               "l3_1", "l3_19", "l3_4", "l3_44"],
          "retime26-done/problems": ["l1_1", "l1_23", "l1_47"],
          "attn26": ["attn_neighborhood_2d", "attn_relative_position"]}
NOT_EXPORTED = ["prompts, reasoning and answers (each attempt's prompt is a line saying so)",
                "verdicts beyond status and message (message cut at 400 characters)", "base attempt (NULL)",
                "wall-clock start of each attempt (started_at 'not exported')", "tokens (NULL)",
                "session (0: each run had one)", "the model's settings (relay at 8800 + the key's place in "
                "benchmarks/real_model_sample.sh, as that script ran it)", "--set overrides (the script gave none)",
                "the summary's tolerance, tokens, model, device, verifier and the kept kernel's cold-check verdict"]
# The sample's problems in benchmarks/real_model_sample.sh's order: KEY -> file; the relay's port is 8800 + place.
SAMPLE = re.findall(r"(\w+):((?:level\d|examples/attention)/\S+\.py)", (ROOT / "benchmarks/real_model_sample.sh")
                    .read_text())


def rebuild(export: Path, key: str, run: RunDir) -> str:
    source = export / "rerun" / key if (export / "rerun" / key).is_dir() else export / "first" / key
    exported = json.loads((source / "run.json").read_text())
    place, file = next((i, f) for i, (k, f) in enumerate(SAMPLE) if k == key)
    mark = {"from": str(source), "not_exported": NOT_EXPORTED}
    run.new_search()  # refuses a folder that holds a run already
    variant_names = None
    if file.startswith("examples/"):  # `solve SPEC`: its problem as the CPU search had it (TEST_SHAPES)
        from kernelsearch.attention.spec import load_spec
        from kernelsearch.attention.workflow import SIZE_CONSTANTS, spec_problem
        problem = ROOT / file
        found = spec_problem(load_spec(problem), "cpu")
        run.path.mkdir(parents=True)
        run.problem_file.write_text(found.source)
        variant_names = sorted(SIZE_CONSTANTS)
        same_seed = found.kernel is not None and found.kernel.source.strip() == \
            (source / "attempt1.py").read_text().strip()
        mark["problem.py"] = ("generated again from the spec (not exported); the store's attempt 1 is the run's "
                              "generated kernel as exported" + ("" if same_seed else ", which today's generator "
                                                                "no longer writes word for word"))
    else:
        problem = ROOT / "kb" / file
        mark["problem.py"] = f"copied from kb/{file} (not exported)"
    model = ModelConfig(base_url=f"http://127.0.0.1:{8800 + place}/v1", model="relay")
    run.save_settings(Settings(str(problem), {}, SolveConfig(**exported["search"]), model,
                               exported["shrink"] or {}, variant_names))
    config = run.read_config()
    run.config.write_text(json.dumps({**config, "rebuilt_from_export": mark}, indent=2) + "\n")

    store = run.open_store()
    codes = {}
    for a in exported["attempts"]:
        code_file = source / f"attempt{a['attempt']}.py"
        codes[a["attempt"]] = code_file.read_text() if code_file.is_file() else None
        attempt = store.begin(lane=a["lane"], step=a["step"], strategy=a["strategy"], base_id=None, session=0,
                              started_s=a["started_s"], prompt=f"(not exported: rebuilt from {source})")
        assert attempt == a["attempt"], f"{source}: attempt {a['attempt']} would be stored as {attempt}"
        store.update(attempt, status=a["status"], finished_s=a["finished_s"], code=codes[attempt],
                     note="rebuilt from export: verdict holds only status and the exported message",
                     verdict={"status": a["status"], "message": a["message"]}, llm_s=a["llm_s"],
                     verify_s=a["verify_s"], started_at="not exported", prompt_tokens=None,
                     completion_tokens=None, reasoning_tokens=None)
    if exported["elapsed_s"] is not None:
        store.set_meta(ELAPSED, exported["elapsed_s"])
    store.close()

    retimed = export / "retime-h100-partial" / f"{key}.summary.json"
    if retimed.is_file():  # the run's own summary after its H100 re-time: kept as written
        summary = json.loads(retimed.read_text())
        best = summary["best"]
        run.write_best(best_header(key, best["attempt"], Verdict.from_json(best["cold_check"]),
                                   f"re-timed at the {summary['retime']['sizes']} sizes"), codes[best["attempt"]])
        run.write_summary({**summary, "rebuilt_from_export": {**mark, "summary.json": str(retimed)}})
        return f"{source.parent.name}/{key}, summary from {retimed.name}"
    if exported["problem"] is None:  # the run was stopped before it wrote a summary: none here either
        return f"{source.parent.name}/{key}, no summary (the run had none)"
    statuses = {}
    for a in exported["attempts"]:
        statuses[a["status"]] = statuses.get(a["status"], 0) + 1
    kept = next((a for a in exported["attempts"] if a["attempt"] == exported["kept"]), None)
    best = kept and {"attempt": kept["attempt"], "lane": kept["lane"], "strategy": kept["strategy"],
                     "found_after_s": round(kept["finished_s"], 1), "search_timing": None,  # the CPU times nothing
                     "cold_check": {"status": "correct", "message": "not exported: the run's headline says this "
                                    "kernel passed its cold re-check; that verdict was not kept"}}
    run.write_summary({"problem": exported["problem"], "solved": kept is not None, "headline": exported["headline"],
                       "stop_reason": exported["stop_reason"], "elapsed_s": exported["elapsed_s"],
                       "budget_s": exported["search"]["budget_s"], "attempts": len(exported["attempts"]),
                       "statuses": statuses, "best": best, "rebuilt_from_export": mark})
    if kept:
        run.write_best(f"kernelsearch: best kernel for {key} - attempt {kept['attempt']}, the kernel the CPU run "
                       f"kept (rebuilt from export; not timed)", codes[kept["attempt"]])
    return f"{source.parent.name}/{key}"


def main() -> int:
    export, dest = Path(sys.argv[1]), Path(sys.argv[2])
    for group, keys in GROUPS.items():
        for key in keys:
            print(f"{group}/{key}: {rebuild(export, key, RunDir(dest / group / key))}", flush=True)
        if group.endswith("/problems"):  # the bench's report (written after a re-time) says where its runs came from
            (dest / group).parent.joinpath("context.json").write_text(json.dumps(
                {"run": str(dest / group.split("/")[0]), "rebuilt_from_export": str(export)}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
