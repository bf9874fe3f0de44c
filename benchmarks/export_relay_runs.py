"""Copy what a reader needs of relay runs into benchmarks/results/: per problem its attempts' kernels
(attemptN.py) and run.json (the shrink, the search's settings, each attempt's lane, strategy, status, verdict
message and timestamps, the kept attempt), and the model's notes where the relay session wrote them. The run
directories themselves (stores, prompts) stay where they ran: `kernelsearch retime` needs them.

    python3 benchmarks/export_relay_runs.py SAMPLE_DIR DEST_DIR     # SAMPLE_DIR as real_model_sample.sh laid out
"""
from __future__ import annotations

import json
import shutil
import sqlite3
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
from kernelsearch.search.run_dir import CONFIG_NAME, STORE_NAME, SUMMARY_NAME  # noqa: E402


def export(run: Path, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    store = sqlite3.connect(run / STORE_NAME)
    store.row_factory = sqlite3.Row
    attempts = []
    for a in store.execute("select * from attempts order by id"):
        if a["code"]:
            (dest / f"attempt{a['id']}.py").write_text(a["code"])
        verdict = json.loads(a["verdict"]) if a["verdict"] else {}
        attempts.append({"attempt": a["id"], "lane": a["lane"], "step": a["step"], "strategy": a["strategy"],
                         "status": a["status"], "message": (verdict.get("message") or "")[:400],
                         "started_s": a["started_s"], "finished_s": a["finished_s"], "llm_s": a["llm_s"],
                         "verify_s": a["verify_s"]})
    config = json.loads((run / CONFIG_NAME).read_text()) if (run / CONFIG_NAME).exists() else {}
    summary = json.loads((run / SUMMARY_NAME).read_text()) if (run / SUMMARY_NAME).exists() else {}
    (dest / "run.json").write_text(json.dumps({
        "problem": summary.get("problem"), "shrink": config.get("shrink"), "search": config.get("search"),
        "kept": (summary.get("best") or {}).get("attempt"), "headline": summary.get("headline"),
        "stop_reason": summary.get("stop_reason"), "elapsed_s": summary.get("elapsed_s"), "attempts": attempts},
        indent=1) + "\n")


def main() -> int:
    sample, dest = Path(sys.argv[1]), Path(sys.argv[2])
    runs = sample / "problems" if (sample / "problems").is_dir() else sample / "runs"
    for run in sorted(p for p in runs.iterdir() if (p / STORE_NAME).exists()):
        export(run, dest / run.name)
        notes = sample / "notes" / f"{run.name}.md"
        if notes.exists():
            shutil.copy(notes, dest / run.name / "model_notes.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
