"""report.md and one self-contained report.html (inline style, figures embedded: it opens from disk, no server)."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

from o2o.report.tables import PROTOCOLS

LABELS = {"last": "last", "last3": "last 3"}


def protocol_note(final: str) -> str:
    other = next(k for k in PROTOCOLS if k != final)
    return (f"Final score of a run: {PROTOCOLS[final]}; '{LABELS[other]}' is {PROTOCOLS[other]}. 'Best' selects the "
            "best evaluation with evaluation episodes and is optimistic: never compare it with a published final "
            "score. IQM = interquartile mean; intervals are 95% stratified-bootstrap confidence intervals over seeds "
            "(and datasets for aggregates), computed with rliable.")


def _num(value: Any, digits: int = 1) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _percent(fraction: float | None) -> str:
    return "" if fraction is None else f"{100 * fraction:.1f}%"


def _ci(point: float | None, ci: list[float] | None, digits: int = 1) -> str:
    if point is None:
        return ""
    return f"{point:.{digits}f} [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]" if ci else f"{point:.{digits}f}"


def tables(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The report's tables as {id, title, note, header, rows}: one source for Markdown and HTML."""
    final = report["protocol"]
    other = next(k for k in PROTOCOLS if k != final)
    out = [{
        "id": "entries", "title": f"Final {report['unit']} per method and dataset", "note": protocol_note(final),
        "header": ["method", "dataset", "seeds", f"final: {LABELS[final]} (mean ± std)", "IQM [95% CI]",
                   f"{LABELS[other]} (mean ± std)", "best (optimistic)", "data", "published"],
        "rows": [[e["method"], e["dataset"], str(e["seeds"]), f"{e['final_mean']:.1f} ± {e['final_std']:.1f}",
                  _ci(e["iqm"], e["iqm_ci"]), f"{e[other + '_mean']:.1f} ± {e[other + '_std']:.1f}",
                  _num(e["best_mean_optimistic"]), _num(e.get("data_score")), _num(e["published"])]
                 for e in report["entries"]],
    }]
    out[0]["note"] += " Data: the dataset's own score (mean return of its complete episodes)."
    if report["last3_short"]:
        out[0]["note"] += (f" '{LABELS['last3']}' of a run with fewer than three evaluations is the mean of those it "
                           "has: " + "; ".join(f"{r['name']} ({r['evaluations']} of 3)"
                                               for r in report["last3_short"]) + ".")
    imported = report.get("imported") or []
    if imported:
        out[0]["note"] += (" Imported (other code's curves, not run by o2o; the same statistics): "
                           + ", ".join(m["method"] for m in imported) + "; see 'Imported results'.")
    if any(e["published"] is not None for e in report["entries"]):
        sources = sorted({e["published_source"] for e in report["entries"] if e["published_source"]})
        out[0]["note"] += " Published: " + " | ".join(sources) + "."
    if imported:
        out.append({
            "id": "imported", "title": "Imported results",
            "note": "Per-seed evaluation curves of other code, imported with `o2o results import`: o2o did not run "
                    "them and reports them with the same statistics as its own runs.",
            "header": ["method", "datasets", "runs", "source", "imported from"],
            "rows": [[m["method"], ", ".join(m["datasets"]), str(m["runs"]), "; ".join(m["sources"]) or "not given",
                      " ".join(m["files"])] for m in imported],
        })
    if report["aggregate"]:
        out.append({
            "id": "aggregate", "title": "Aggregates over datasets (final score)",
            "note": "Each method over the datasets it ran on, the same number of seeds per dataset.",
            "header": ["method", "datasets x runs", "IQM", "mean", "median", "optimality gap"],
            "rows": [[m, f"{a['datasets']} x {a['runs_per_dataset']}", _ci(a["iqm"], a["iqm_ci"]),
                      _ci(a["mean"], a["mean_ci"]), _ci(a["median"], a["median_ci"]),
                      _ci(a["optimality_gap"], a["optimality_gap_ci"])] for m, a in report["aggregate"].items()],
        })
    if report["improvement"]:
        runs = {m: n for p in report["improvement"] for m, n in p["runs"].items()}
        out.append({
            "id": "improvement", "title": "Probability of improvement",
            "note": f"P(X > Y) over the datasets every method has ({', '.join(report['improvement'][0]['datasets'])}), "
                    "each method with all its runs on each (runs per dataset: "
                    + ", ".join(f"{m} {n}" for m, n in runs.items()) + ").",
            "header": ["X", "Y", "P(X > Y) [95% CI]"],
            "rows": [[p["x"], p["y"], _ci(p["probability"], p["ci"], 2)] for p in report["improvement"]],
        })
    o2o_rows = [e for e in report["entries"] if e["online_algo"]]
    if o2o_rows:
        out.append({
            "id": "o2o", "title": "Offline to online",
            "note": "Means over seeds. Dip: lowest score in the first 10% of online steps minus the score at online step "
                    "0. Cumulative regret: mean failure rate over online training episodes (goal tasks only).",
            "header": ["method", "dataset", "seeds", "offline (last)", "online step 0", "final", "dip", "cumulative regret"],
            "rows": [[e["method"], e["dataset"], str(e["seeds"]), _num(e.get("offline_mean")), _num(e.get("start_mean")),
                      _num(e["final_mean"]), _num(e.get("dip_mean")), _num(e.get("cumulative_regret"), 3)]
                     for e in o2o_rows],
        })
    if report["datasets"]:
        out.append({"id": "datasets", "title": "Datasets", "note": "Behaviour: mean return of the complete episodes, "
                    "terminated or at the time limit (an episode cut by the end of collection would flatter a poor "
                    "policy); of all episodes where none is complete. Action variance: of the behaviour's actions "
                    "among the 10 nearest dataset states (Belkhale et al. 2023, whose action divergence it bounds "
                    "from below). Transition noise: the share of the change s' - s that a local linear model of (s, a) "
                    "leaves unexplained (deterministic dynamics leave a small floor).",
                    "header": ["dataset", "env", "level", "transitions", "episodes", "complete episodes",
                               "behaviour return", "behaviour score", "action variance", "transition noise"],
                    "rows": [[d["dataset"], d["env"] or "", d["level"] or "", f"{d['transitions']:,}", f"{d['episodes']:,}",
                              f"{d['complete_episodes']:,}", f"{d['return_mean']:.1f}", _num(d["normalized_score"]),
                              _num(d["action_variance"], 3), _percent(d["transition_noise_fraction"])]
                             for d in report["datasets"]]})
    if report["failures"]:
        out.append({"id": "failures", "title": "Failed, incomplete or not counted",
                    "note": "Not counted in any score above.",
                    "header": ["cell or run", "status", "error"],
                    "rows": [[f["name"], f["status"], f["error"] or ""] for f in report["failures"]]})
    out.append({"id": "runs", "title": "Runs", "note": "One row per trained seed.",
                "header": ["method", "dataset", "seed", "status", "final", "wall s", "run directories"],
                "rows": [[r["method"], r["dataset"], str(r["seed"]), r["status"], _num(r["final"]), _num(r["wall_seconds"], 0),
                          f"imported from {r['file']}" if r.get("imported") else
                          " ".join(d for d in (r["offline_dir"], r["online_dir"]) if d)] for r in report["runs"]]})
    return out


def markdown(report: dict[str, Any]) -> str:
    lines = ["# o2o report", "", f"Generated {report['generated']} from {', '.join(report['sources'])}.", ""]
    for table in tables(report):
        lines += [f"## {table['title']}", "", table["note"], "", "| " + " | ".join(table["header"]) + " |",
                  "|" + "---|" * len(table["header"])]
        lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in table["rows"]]
        lines.append("")
    for figure in report["figures"]:
        lines += [f"## {figure['title']}", "", f"![{figure['title']}]({figure['png']})", "", figure["caption"], ""]
    return "\n".join(lines)


STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 1100px; color: #222;
       padding: 0 1rem; }
h1 { margin-bottom: 0.2rem; } h2 { margin-top: 2rem; border-bottom: 1px solid #ddd; padding-bottom: 0.2rem; }
.meta, .note { color: #555; font-size: 0.9rem; }
table { border-collapse: collapse; margin: 0.6rem 0; font-size: 0.88rem; }
th, td { border: 1px solid #ddd; padding: 0.25rem 0.55rem; text-align: right; }
th { background: #f4f4f4; } td:first-child, td:nth-child(2), th:first-child, th:nth-child(2) { text-align: left; }
tbody tr:nth-child(even) { background: #fafafa; }
figure { margin: 1rem 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.88rem; }
details { margin-top: 1rem; }
"""


def html_page(report: dict[str, Any], report_dir: Path) -> str:
    def table_html(table: dict[str, Any]) -> str:
        head = "".join(f"<th>{html.escape(h)}</th>" for h in table["header"])
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in table["rows"])
        return (f'<p class="note">{html.escape(table["note"])}</p><table id="{table["id"]}"><thead><tr>{head}</tr>'
                f"</thead><tbody>{body}</tbody></table>")

    parts = [f"<h1>o2o report</h1><p class=\"meta\">Generated {html.escape(report['generated'])} from "
             f"{html.escape(', '.join(report['sources']))}. Database: {html.escape(report['database'])}.</p>"]
    figures = []
    for figure in report["figures"]:
        data = base64.b64encode((report_dir / figure["png"]).read_bytes()).decode()
        figures.append(f"<h2>{html.escape(figure['title'])}</h2><figure><img alt=\"{html.escape(figure['title'])}\" "
                       f"src=\"data:image/png;base64,{data}\"><figcaption>{html.escape(figure['caption'])} "
                       f"<a href=\"{figure['svg']}\">SVG</a></figcaption></figure>")
    for table in tables(report):
        if table["id"] in ("failures", "runs"):  # figures come after the score tables, before the bookkeeping
            parts += figures
            figures = []
        block = f"<h2>{html.escape(table['title'])}</h2>{table_html(table)}"
        parts.append(f"<details><summary>{html.escape(table['title'])}</summary>{table_html(table)}</details>"
                     if table["id"] == "runs" else block)
    versions = ", ".join(f"{k} {v}" for k, v in report["versions"].items())
    parts.append(f"<p class=\"meta\">{html.escape(versions)}</p>")
    return (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>o2o report</title>"
            f"<style>{STYLE}</style></head><body>{''.join(parts)}</body></html>\n")
