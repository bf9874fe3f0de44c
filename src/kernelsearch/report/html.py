"""The run report: one self-contained HTML file (inline SVG plots, no network) from a solve, bench or replay run."""
from __future__ import annotations

import html
import io
import json
import time
from pathlib import Path

from ..search.run_dir import RunDir
from ..verify.verdict import Status, Verdict, format_verdict
from .metrics import BASELINES, P_VALUES, ProblemResult, summarize

STATUS_COLORS = {Status.CORRECT: "#2e7d32", Status.INCORRECT: "#c62828", Status.COMPILE_ERROR: "#ef6c00",
                 Status.RUNTIME_ERROR: "#ad1457", Status.TIMEOUT: "#6a1b9a", Status.REJECTED: "#37474f",
                 Status.NO_CODE: "#90a4ae", Status.LLM_ERROR: "#bdbdbd", Status.COMPILED: "#1565c0",
                 Status.PROBLEM_ERROR: "#795548", Status.DUPLICATE: "#cfd8dc", Status.SHAPE_SPECIFIC: "#9e9d24",
                 Status.SUSPICIOUS: "#f9a825"}
STATUS_ORDER = list(STATUS_COLORS)


def _svg(fig) -> str:
    import matplotlib.pyplot as plt

    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg"):]  # drop the XML prologue: the SVG sits inside the HTML


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.fonttype": "none", "svg.hashsalt": "kernelsearch", "font.size": 9,
                         "axes.spines.top": False, "axes.spines.right": False})
    return plt


def solve_curve_plot(curve: list, budget_s: float | None) -> str:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.0))
    end = max([budget_s or 0.0] + [t for t, _, _ in curve]) / 60 or 1.0
    times = [t / 60 for t, _, _ in curve] + [end]
    for index, label, color in ((1, "correct kernel", "#2e7d32"), (2, "faster than eager PyTorch", "#1565c0")):
        values = [point[index] * 100 for point in curve]
        ax.step(times, values + values[-1:], where="post", label=label, color=color, linewidth=2)
    ax.set(xlabel="minutes of search", ylabel="% of problems", ylim=(0, 102), xlim=(0, end))
    ax.legend(loc="lower right", frameon=False)
    ax.grid(alpha=0.3)
    return _svg(fig)


def speedup_plot(results: list[ProblemResult]) -> str:
    plt = _pyplot()
    timed = [r for r in results if r.speedup("eager")]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.45 * len(timed) + 1.5), 3.2))
    positions = range(len(timed))
    for offset, baseline, color in ((-0.2, "eager", "#1565c0"), (0.2, "compile", "#ef6c00")):
        ax.bar([x + offset for x in positions], [r.speedup(baseline) or 0 for r in timed], width=0.4, color=color,
               label=f"vs {'eager PyTorch' if baseline == 'eager' else 'torch.compile'}")
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(_times_formatter())
    ax.yaxis.set_minor_formatter(_times_formatter())
    ax.set_xticks(list(positions), [r.key for r in timed], rotation=45, ha="right")
    ax.set_ylabel("speedup (log scale)")
    ax.legend(frameon=False)
    return _svg(fig)


def _times_formatter():
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda value, _: f"{value:g}×")


def trajectory_plot(result: ProblemResult) -> str:
    """Best speedup so far over time (when timed), and every attempt as a dot coloured by its status."""
    plt = _pyplot()
    fig, (ax, strip) = plt.subplots(2, 1, figsize=(6.4, 2.6), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    points = sorted(result.timeline, key=lambda p: p.t)
    best, xs, ys = 0.0, [], []
    for p in points:
        if p.status == Status.CORRECT and p.speedup_eager:
            best = max(best, p.speedup_eager)
            xs.append(p.t / 60)
            ys.append(best)
    end = max([result.budget_s or 0.0] + [p.t for p in points]) / 60
    if xs:
        ax.step(xs + [end], ys + ys[-1:], where="post", color="#1565c0", linewidth=2)
        ax.plot(xs, ys, "o", color="#1565c0", markersize=4)
        ax.yaxis.set_major_formatter(_times_formatter())
        ax.axhline(1.0, color="black", linewidth=0.6)
        ax.set_ylabel("best speedup\nvs eager")
    else:
        ax.text(0.5, 0.5, "not timed (no GPU): see the attempts below", ha="center", va="center",
                transform=ax.transAxes, color="#555")
        ax.set_yticks([])
    for status in STATUS_ORDER:
        mine = [p.t / 60 for p in points if p.status == status]
        if mine:
            strip.scatter(mine, [STATUS_ORDER.index(status)] * len(mine), color=STATUS_COLORS[status], s=18,
                          label=status)
    strip.set_yticks([])
    strip.set_xlim(0, end or 1.0)
    strip.set_xlabel("minutes of search")
    strip.legend(loc="upper left", bbox_to_anchor=(1.0, 1.6), frameon=False, fontsize=7)
    return _svg(fig)


def _fmt(value, kind: str = "x") -> str:
    if value is None:
        return "–"
    if kind == "%":
        return f"{value * 100:.0f}%"
    if kind == "x":
        return f"{value:.2f}×"
    if kind == "ms":
        return f"{value:.4g} ms"
    if kind == "s":
        return f"{value / 60:.1f} min"
    return f"{value:,}" if isinstance(value, int) else str(value)


def render(results: list[ProblemResult], title: str, context: dict,
           prices: tuple[float, float] | None = None) -> str:
    summary = summarize(results, prices)
    budget = max([r.budget_s or 0 for r in results], default=0) or None
    rows = [("problems", summary["problems"]),
            ("correct", f"{summary['correct']} ({_fmt(summary['correctness'], '%')})"),
            ("correct as KernelBench judges (its shapes only)",
             f"{summary['correct_kernelbench']} ({_fmt(summary['correctness_kernelbench'], '%')})"),
            ("attempts", summary["attempts"])]
    rows += [(f"{k.replace('_', ' ')}", f"{v:,}") for k, v in summary["tokens"].items()]
    if summary["cost_usd"] is not None:
        rows.append(("cost", f"${summary['cost_usd']:.2f}"))
    fast_rows = "".join(
        f"<tr><th>{'eager PyTorch' if b == 'eager' else 'torch.compile'}</th>"
        + "".join(f"<td>{_fmt(summary['fast_p'][b][f'{p:g}'], '%')}</td>" for p in P_VALUES)
        + f"<td>{_fmt(summary['geomean_speedup'][b])}</td></tr>" for b in BASELINES)
    timed_note = "" if summary["timed"] else (
        "<p class=note>Nothing in this run was timed (no GPU: Triton ran in its interpreter), so fast_p and "
        "speedups are empty; correctness is real.</p>")
    problem_rows = "".join(
        f"<tr><td><a href='#{html.escape(r.key)}'>{html.escape(r.key)}</a></td><td>{r.state}</td>"
        f"<td class={'ok' if r.solved else 'bad'}>{'yes' if r.solved else 'no'}</td>"
        f"<td>{_fmt(r.speedup('eager'))}</td><td>{_fmt(r.speedup('compile'))}</td><td>{_fmt(r.ms('candidate'), 'ms')}"
        f"</td><td>{_fmt(r.first(), 's')}</td><td>{len(r.timeline)}</td></tr>" for r in results)
    sections = "".join(_problem_section(r) for r in results)
    curve = solve_curve_plot(summary["solve_curve"], budget) if any(r.timeline for r in results) else \
        "<p class=note>No search timeline in this run (a replay re-verifies kernels without searching).</p>"
    speed = speedup_plot(results) if summary["timed"] else ""
    context_rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
                           for k, v in context.items())
    return PAGE.format(
        title=html.escape(title), generated=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        context_rows=context_rows, metric_rows="".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows),
        p_headers="".join(f"<th>fast<sub>{p:g}</sub></th>" for p in P_VALUES), fast_rows=fast_rows,
        timed_note=timed_note, curve=curve, speed=speed, problem_rows=problem_rows, sections=sections,
        data=html.escape(json.dumps({k: summary[k] for k in ("problems", "correct", "timed")})))


def _problem_section(r: ProblemResult) -> str:
    outcome = "correct" if r.solved else r.error or "no correct kernel"
    if r.speedup("eager"):
        outcome += f", {r.speedup('eager'):.2f}× eager"
    parts = [f"<details id='{html.escape(r.key)}'><summary>{html.escape(r.key)} — {html.escape(outcome)}</summary>"]
    if r.timeline:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(r.statuses.items(), key=lambda kv: -kv[1]))
        parts.append(f"<p>attempts: {counts}</p>{trajectory_plot(r)}")
    if r.verdict:
        parts.append(f"<pre class=verdict>{html.escape(format_verdict(Verdict.from_json(r.verdict)))}</pre>")
    if r.source:
        parts.append(f"<pre class=code>{html.escape(r.source)}</pre>")
    return "".join(parts) + "</details>"


PAGE = """<!doctype html>
<html lang=en><head><meta charset=utf-8><title>{title}</title>
<style>
body {{ font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; padding: 0 1em; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1.5em; }}
th, td {{ padding: 3px 10px; border-bottom: 1px solid #e0e0e0; text-align: left; }}
td.ok {{ color: #2e7d32; font-weight: 600; }} td.bad {{ color: #c62828; }}
.note {{ color: #555; font-style: italic; }}
pre {{ background: #f6f8fa; padding: 0.8em; overflow-x: auto; font-size: 12px; }}
details {{ border-top: 1px solid #ddd; padding: 0.4em 0; }} summary {{ cursor: pointer; font-weight: 600; }}
.plots svg {{ max-width: 100%; height: auto; }}
</style></head>
<body data-summary="{data}">
<h1>{title}</h1>
<p class=note>generated {generated}</p>
<table>{context_rows}</table>
<h2>Metrics</h2>
<table>{metric_rows}</table>
<table><tr><th>speedup over</th>{p_headers}<th>geomean (correct)</th></tr>{fast_rows}</table>
{timed_note}
<h2>Solve rate over time</h2>
<div class=plots id=solve-curve>{curve}</div>
<h2>Speedup per problem</h2>
<div class=plots id=speedups>{speed}</div>
<table><tr><th>problem</th><th>state</th><th>correct</th><th>vs eager</th><th>vs compile</th><th>kernel</th>
<th>first correct</th><th>attempts</th></tr>{problem_rows}</table>
<h2>Problems</h2>
<div class=plots>{sections}</div>
<script>
// Self-check for people and for the browser test: errors and the size of every plot end up on <body>.
window.kernelsearchErrors = [];
window.addEventListener("error", e => window.kernelsearchErrors.push(String(e.message)));
window.addEventListener("load", () => {{
  const details = document.querySelectorAll("details");
  if (details.length <= 20) details.forEach(d => d.open = true);  // small runs: everything in view
  const plots = [...document.querySelectorAll(".plots svg")].filter(svg => svg.getClientRects().length);
  const drawn = plots.filter(svg => {{ const b = svg.getBBox(); return b.width > 50 && b.height > 50 &&
                                      svg.querySelectorAll("path, use, rect").length > 3; }});
  document.body.dataset.plots = plots.length;
  document.body.dataset.drawn = drawn.length;
  document.body.dataset.errors = window.kernelsearchErrors.join(" | ");
  document.body.dataset.loaded = "yes";
}});
</script>
</body></html>
"""


def write_report(run_dir: Path, results: list[ProblemResult], context: dict,
                 prices: tuple[float, float] | None = None) -> Path:
    path = RunDir(run_dir).report
    path.write_text(render(results, f"kernelsearch — {Path(run_dir).resolve().name}", context, prices))
    return path
