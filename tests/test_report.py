"""Metrics on known recorded data, and the HTML report in a real headless browser."""
from __future__ import annotations

import math
import os
import re
import shutil
import subprocess

import pytest

from kernelsearch.cli import main
from kernelsearch.report.html import write_report
from kernelsearch.report.metrics import load_results, summarize, write_results
from kernelsearch.search.run_dir import RunDir
from kernelsearch.store import ELAPSED, RunStore
from kernelsearch.verify import Verdict

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# CI installs Debian's chromium and sets this, so that a missing browser fails there instead of skipping
REQUIRE_BROWSER = os.environ.get("KS_REQUIRE_BROWSER") == "1"


def cold(eager: float, compile_: float) -> dict:
    timing = {"candidate": {"median_ms": 1.0}, "eager": {"median_ms": eager}, "compile": {"median_ms": compile_},
              "speedup_vs_eager": eager, "speedup_vs_compile": compile_}
    return Verdict("correct", "", problem="p", candidate="best", device="H100", timing=timing).to_json()


def record(run, key, attempts, best=None, error=None, budget=60.0):
    """A problem directory as `bench` leaves it: the store of attempts (t, status, speedup vs eager), summary."""
    d = RunDir(run).problem(key)
    d.path.mkdir(parents=True)
    if error:
        d.error.write_text(error + "\n")
        return
    store = RunStore(d.store)
    for step, (t, status, speedup) in enumerate(attempts, 1):
        i = store.begin(lane=0, step=step, strategy="first", base_id=None, session=0, started_s=t - 1, prompt="p")
        store.update(i, status=status, finished_s=t, speedup_eager=speedup, prompt_tokens=100, completion_tokens=1000)
    store.set_meta(ELAPSED, budget)
    store.close()
    summary = {"solved": best is not None, "budget_s": budget, "attempts": len(attempts),
               "best": {"cold_check": best} if best else None}
    d.write_summary(summary)
    if best:
        d.best.write_text(f"# kernel of {key}\nclass ModelNew: pass\n")


@pytest.fixture
def known_run(tmp_path):
    run = tmp_path / "bench"
    record(run, "A", [(10, "incorrect", None), (20, "correct", 0.8), (50, "correct", 2.5)], best=cold(2.4, 1.2))
    record(run, "B", [(30, "correct", 1.2)], best=cold(1.25, 0.9))
    record(run, "C", [(5, "compile_error", None), (15, "no_code", None)])
    record(run, "D", [], error="problem error: Model missing")
    return run


def test_metrics_on_known_data(known_run):
    results = load_results(known_run)
    assert [r.state for r in results] == ["finished", "finished", "finished", "error"]
    s = summarize(results, prices=(1.0, 2.0))
    assert (s["problems"], s["correct"], s["correctness"]) == (4, 2, 0.5)
    assert s["fast_p"]["eager"] == {"0": 0.5, "1": 0.5, "1.5": 0.25, "2": 0.25}
    assert s["fast_p"]["compile"] == {"0": 0.5, "1": 0.25, "1.5": 0.0, "2": 0.0}
    assert s["geomean_speedup"]["eager"] == pytest.approx(math.sqrt(2.4 * 1.25))
    assert s["geomean_speedup"]["compile"] == pytest.approx(math.sqrt(1.2 * 0.9))
    # first correct: A at 20 s, B at 30 s; first faster than eager: B at 30 s, A at 50 s (its 0.8x did not count)
    assert s["solve_curve"] == [(0.0, 0, 0), (20.0, 0.25, 0), (30.0, 0.5, 0.25), (50.0, 0.5, 0.5)]
    assert s["tokens"]["completion_tokens"] == 6000 and s["attempts"] == 6
    assert (s["correct_kernelbench"], s["correctness_kernelbench"]) == (2, 0.5)  # no kernel fixed to its shapes
    assert s["cost_usd"] == pytest.approx((600 * 1.0 + 6000 * 2.0) / 1e6)


def test_kernelbench_s_pass_rate_counts_kernels_right_at_the_problems_shapes_only(known_run):
    record(known_run, "E", [(8, "shape_specific", None), (40, "incorrect", None)])
    record(known_run, "F", [(12, "suspicious", 80.0)])
    record(known_run, "G", [(12, "rejected", None)])
    s = summarize(load_results(known_run))
    assert (s["correct"], s["correct_kernelbench"]) == (2, 4)
    assert s["correctness"] == pytest.approx(2 / 7) and s["correctness_kernelbench"] == pytest.approx(4 / 7)
    assert s["fast_p"]["eager"]["1"] == pytest.approx(2 / 7)  # the suspicious 80x is not a speedup
    write_results(known_run, load_results(known_run), s)
    lines = (known_run / "results.csv").read_text().splitlines()
    assert lines[0].startswith("problem,state,solved,solved_kernelbench,")
    assert any(line.startswith("E,finished,0,1,") for line in lines)


def test_after_a_retime_at_the_original_sizes_kernelbench_s_judgement_is_the_retime_s(known_run):
    # #26's l2_18: every attempt correct at the shrunk sizes searched, every one wrong at the problem's own
    record(known_run, "H", [(8, "correct", None), (9, "correct", None)])
    d = RunDir(known_run).problem("H")
    wrong = [{"attempt": 1, "status": "incorrect"}, {"attempt": 2, "status": "incorrect"}]
    d.write_summary({**d.read_summary(), "retime": {"sizes": "original", "best_before": 1, "attempts": wrong}})
    assert summarize(load_results(known_run))["correct_kernelbench"] == 2  # A and B, not H
    d.write_summary({**d.read_summary(), "retime": {"sizes": "searched", "best_before": 1, "attempts": wrong}})
    assert summarize(load_results(known_run))["correct_kernelbench"] == 3  # re-timed elsewhere: the search's


def test_untimed_runs_have_no_fast_p(tmp_path):
    untimed = Verdict("correct", "", device="cpu (Triton interpreter)").to_json()
    record(tmp_path, "A", [(3, "correct", None)], best=untimed)
    s = summarize(load_results(tmp_path))
    assert s["correctness"] == 1.0 and s["fast_p"]["eager"]["0"] is None and not s["timed"]


def test_report_command_writes_a_self_contained_page(known_run):
    with pytest.raises(SystemExit) as done:
        main(["report", str(known_run), "--price", "0.55,2.19"])
    assert done.value.code == 0
    page = (known_run / "report.html").read_text()
    assert page.count("<svg") == 5  # solve curve, speedups, three trajectories
    assert not re.search(r"""(src|href)=["']?https?:|<link|@import|url\(http""", page)  # nothing fetched
    assert "class ModelNew: pass" in page and "cost" in page


def browser_dom(page, tmp_path, screenshot=None) -> str:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'chromium-profile'}", "--virtual-time-budget=5000",
             "--window-size=1200,2400"]
    url = page.resolve().as_uri()
    if screenshot:
        subprocess.run([CHROMIUM, *flags, f"--screenshot={screenshot}", url], capture_output=True, timeout=120)
    done = subprocess.run([CHROMIUM, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    return done.stdout


@pytest.mark.skipif(CHROMIUM is None and not REQUIRE_BROWSER, reason="needs chromium (apt install chromium)")
def test_report_renders_in_a_real_browser(known_run, tmp_path):
    assert CHROMIUM, "KS_REQUIRE_BROWSER=1 but no chromium on PATH"
    results = load_results(known_run)
    page = write_report(known_run, results, {"suite": "known data", "device": "H100"})
    dom = browser_dom(page, tmp_path, screenshot=os.environ.get("KS_REPORT_SCREENSHOT"))
    body = re.search(r"<body([^>]*)>", dom).group(1)
    attrs = dict(re.findall(r'data-(\w+)="([^"]*)"', body))
    assert attrs.get("loaded") == "yes", body
    assert attrs["errors"] == ""  # no script errors on the page
    assert int(attrs["plots"]) == 5 and attrs["drawn"] == attrs["plots"]  # every plot has a size and marks
