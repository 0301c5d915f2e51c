"""`o2o report`: statistics (rliable), figures, report.md, report.json and a self-contained report.html from a bench
directory (its results database), a results database file, or plain run directories (ingested into a database
first). Runs imported from other code (`o2o results import`) are methods of their own, marked as imported."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from o2o import files, results
from o2o.errors import O2OError
from o2o.train.runs import RunDir
from o2o.report import figures, render, stats, tables

def _classify(sources: list[str]) -> tuple[list[Path], list[Path]]:
    """(results databases, run directories): a bench directory counts as its results.sqlite."""
    databases, run_dirs = [], []
    for source in sources:
        path = Path(source)
        if (path / "results.sqlite").is_file():
            databases.append(path / "results.sqlite")
        elif path.is_file() and path.suffix.lower() in (".sqlite", ".sqlite3", ".db"):
            databases.append(path)
        elif RunDir.exists(path):
            run_dirs.append(path)
        else:
            raise O2OError(f"{source}: neither a bench directory (results.sqlite), a results database nor a run "
                           "directory (config.json)")
    return databases, run_dirs


def _database(databases: list[Path], run_dirs: list[Path], report_dir: Path):
    """A database alone is reported as it is; anything else is gathered into REPORT_DIR/results.sqlite: o2o's runs
    ingested again from their directories (copied as stored where the directories are gone), imported runs copied.
    It is built beside that file and moved onto it at the end, so the sources are read first (one of them may be
    REPORT_DIR/results.sqlite itself: an earlier report's, reported again with more)."""
    if len(databases) == 1 and not run_dirs:
        return results.connect(databases[0]), databases[0]
    path = report_dir / "results.sqlite"

    def gather(tmp: Path) -> None:
        conn = results.connect(tmp)
        try:
            for database, name in zip(databases, _source_names(databases)):
                _gather(conn, database, name)
            results.ingest_run_dirs(conn, run_dirs)
        finally:
            conn.close()

    files.atomic_write(path, gather)
    return results.connect(path), path


def _source_names(databases: list[Path]) -> list[str]:
    """What each database's cells are named after when several are gathered: its bench directory's name (a file's
    own name), or its path where two share one."""
    names = [d.parent.name if d.name == "results.sqlite" else d.name for d in databases]
    return names if len(set(names)) == len(names) else [str(d) for d in databases]


def _gather(conn, database: Path, name: str) -> None:
    """One source database into `conn`; several benches of one grid share cell ids, so each cell is named
    `SOURCE/CELL` (a cell that failed in one bench stays beside the same cell completed in another)."""
    source = results.connect(database)
    for row in source.execute("SELECT DISTINCT cell, dataset, offline_dir, online_dir, status, error FROM runs "
                              "WHERE origin = 'o2o'").fetchall():
        cell = row["cell"] and f"{name}/{row['cell']}"
        gone = [d for d in (row["offline_dir"], row["online_dir"]) if d and not RunDir.exists(Path(d))]
        if not gone:
            results.ingest_run(conn, row["offline_dir"] and Path(row["offline_dir"]),
                               row["online_dir"] and Path(row["online_dir"]), cell=cell,
                               status=row["status"], error=row["error"], label=row["dataset"])
        else:  # moved or deleted: the database's rows are what is left of the run
            seeds = results.copy_stored_run(source, conn, row["offline_dir"], row["online_dir"], cell)
            warnings.warn(f"{' and '.join(gone)}: no run directory any more; {seeds} seed(s) "
                          f"reported as {database} stores them", RuntimeWarning, stacklevel=2)
    for row in source.execute("SELECT * FROM cells"):
        results.set_cell(conn, f"{name}/{row['cell']}",
                         **{k: row[k] for k in row.keys() if k not in ("cell", "updated")})
    results.copy_imported(source, conn)
    source.close()


def build(sources: list[str], out: str | Path | None = None, reps: int = 2000, final: str = "last") -> dict[str, Any]:
    """Write the report; returns {report_dir, html, database, entries, aggregate} (the `--json` line). `final` is the
    final-score protocol the statistics use: `last` (D4RL/CORL) or `last3` (OGBench/FQL)."""
    if not sources:
        raise O2OError("o2o report needs at least one bench directory or run directory")
    if final not in tables.PROTOCOLS:
        raise O2OError(f"--final {final!r}; choose one of {', '.join(tables.PROTOCOLS)}")
    if reps < 100:
        raise O2OError(f"--reps must be at least 100 bootstrap samples (got {reps})")
    databases, run_dirs = _classify(sources)
    alone = len(databases) == 1 and not run_dirs
    report_dir = Path(out) if out else (databases[0].parent / "report" if alone else Path("report"))
    # an earlier report is rebuilt in place; any other existing directory is left alone (its results.sqlite would go)
    files.check_destination(report_dir, may_exist=(report_dir / "report.json").is_file())
    report_dir.mkdir(parents=True, exist_ok=True)
    conn, database = _database(databases, run_dirs, report_dir)
    loaded = results.load(conn)
    failed_cells = [dict(row) for row in conn.execute("SELECT * FROM cells WHERE status != 'completed' ORDER BY cell")]
    conn.close()
    run_scores = tables.mark_repeated_seeds(tables.distinguish_variants(tables.separate_imported(
        tables.distinguish_datasets([tables.run_scores(r) for r in loaded]))))
    entry_list = tables.entries(run_scores, reps, final)
    if not entry_list:
        raise O2OError(f"{', '.join(sources)}: no completed run to report{_why_none(failed_cells, run_scores)}")
    repeated = [s for s in run_scores if s.status == tables.REPEATED_SEED]
    if repeated:
        warnings.warn(f"{'; '.join(_run_name(s) for s in repeated)}: the same method, config and seed as a run already "
                      "counted; each seed counts once", RuntimeWarning)
    short = [s for s in run_scores if s.status == "completed" and s.last is not None and s.evaluations < 3]
    if short and final == "last3":
        named = "; ".join(_run_name(s, evaluations=True) for s in short)
        warnings.warn(f"--final last3: {len(short)} run(s) have fewer than three evaluations, so their final score "
                      f"averages only those: {named}", RuntimeWarning)
    kinds = {e["kind"] for e in entry_list}
    unit = tables.UNITS[kinds.pop()] if len(kinds) == 1 else "score (normalized, or success %)"
    report: dict[str, Any] = {
        "generated": results.now(), "sources": [str(s) for s in sources], "database": str(database), "unit": unit,
        "reps": reps, "protocol": final, "entries": entry_list, "aggregate": tables.aggregate(entry_list, reps),
        "improvement": tables.improvement(entry_list, reps),
        "curves": {phase: tables.curves(run_scores, phase, reps) for phase in ("offline", "online")},
        "failures": [{"name": c["cell"], "status": c["status"], "error": c["error"]} for c in failed_cells]
        + [{"name": _run_name(s), "status": s.status,
            "error": "its seed is counted from an earlier run of the same method and config"
            if s.status == tables.REPEATED_SEED else None}
           for s in run_scores if s.status not in ("completed", "failed")]
        + [{"name": _run_name(s), "status": "not counted", "error": s.not_counted}
           for s in run_scores if s.status == "completed" and s.not_counted],
        "last3_short": [{"name": _run_name(s), "evaluations": s.evaluations} for s in short],
        "runs": [{**{k: r[k] for k in ("seed", "offline_dir", "online_dir", "wall_seconds", "cell")},
                  "dataset": s.dataset, "method": s.method, "status": s.status, "final": getattr(s, final),
                  "imported": s.imported, "source": s.source, "file": s.file}
                 for r, s in zip(loaded, run_scores)],
        "imported": tables.imported_methods(entry_list),
        "versions": _versions(loaded),
        "datasets": _datasets(loaded, run_scores),
    }
    behaviour = {d["dataset"]: d["normalized_score"] for d in report["datasets"]}
    for e in entry_list:
        e["data_score"] = behaviour.get(e["dataset"])
    report["figures"] = _figures(report, report_dir / "figures", reps)
    files.atomic_write_bytes(report_dir / "report.md", render.markdown(report).encode())
    files.write_json(report_dir / "report.json", report)
    html_path = report_dir / "report.html"
    files.atomic_write_bytes(html_path, render.html_page(report, report_dir).encode())
    return {"report_dir": str(report_dir), "html": str(html_path), "database": str(database), "protocol": final,
            "entries": [{k: e.get(k) for k in ("method", "algo", "online_algo", "dataset", "seeds", "final_mean",
                                               "final_std", "iqm", "iqm_ci", "last_mean", "last3_mean", "data_score", "published", "offline_mean",
                                               "start_mean", "dip_mean", "cumulative_regret", "imported", "sources")}
                        for e in entry_list],
            "aggregate": {m: {k: a[k] for k in ("iqm", "iqm_ci", "mean", "median", "optimality_gap")}
                          for m, a in report["aggregate"].items()}}


def _run_name(s: tables.RunScores, evaluations: bool = False) -> str:
    name = f"{s.method} / {s.dataset} / seed {s.seed}"
    return f"{name} ({s.evaluations} evaluation{'s' * (s.evaluations != 1)})" if evaluations else name


def _why_none(failed_cells: list[dict[str, Any]], run_scores: list[tables.RunScores]) -> str:
    failed = [c for c in failed_cells if c["status"] == "failed"]
    if failed:
        return f": {len(failed)} cell(s) failed, the first {failed[0]['cell']}: {failed[0]['error']}"
    if run_scores:
        return f": none of its {len(run_scores)} run(s) completed with an evaluation"
    return " yet"


def _datasets(loaded: list[dict[str, Any]], run_scores: list[tables.RunScores]) -> list[dict[str, Any]]:
    """Each dataset the runs trained on (by the label the report gives it), as far as its source can still be read:
    size, the behaviour's score (mean return of its complete episodes, of all where none is complete; normalized where
    references exist), and its action variance and transition noise (`o2o.data.quality`: seconds per million
    transitions)."""
    from o2o.collect.episodes import time_limit
    from o2o.data import dataset_quality, load_dataset
    from o2o.data.stats import behaviour
    from o2o.envs import normalized_score, reference_returns

    out = {}
    for run, scores in zip(loaded, run_scores):
        label, source = scores.dataset, run.get("dataset_source")
        if label in out or not source:
            continue
        try:
            data = load_dataset(source, check_values=False)
        except O2OError:
            continue  # moved or deleted since: the runs still report
        env = run.get("env") or data.env_id
        measured = behaviour(data, None, time_limit(data, env))
        mean = measured["behaviour_return_mean"]
        known = env and reference_returns(env, data.metadata) is not None
        out[label] = {"dataset": label, "env": env, "level": data.metadata.get("level"), "transitions": len(data),
                      "episodes": data.num_episodes, "complete_episodes": measured["return_episodes_complete"],
                      "return_mean": mean,
                      "normalized_score": float(normalized_score(env, mean, data.metadata)) if known else None,
                      **dataset_quality(data)}
    return sorted(out.values(), key=lambda d: d["dataset"])


def _versions(loaded: list[dict[str, Any]]) -> dict[str, Any]:
    for run in loaded:
        if run.get("versions"):
            versions = json.loads(run["versions"]) or {}
            return {k: v for k, v in versions.items() if k in ("o2o", "jax", "flax", "gymnasium", "mujoco", "backend")}
    return {}


def _figures(report: dict[str, Any], out: Path, reps: int) -> list[dict[str, str]]:
    import matplotlib

    matplotlib.use("Agg", force=False)
    if not report["entries"]:
        return []
    with matplotlib.rc_context({"text.parse_math": False}):  # a `$` in a method's name is text, not mathtext
        return _draw(report, out, reps)


def _draw(report: dict[str, Any], out: Path, reps: int) -> list[dict[str, str]]:
    entry_list, unit = report["entries"], report["unit"]
    colors = figures.colors(list(dict.fromkeys(e["method"] for e in entry_list)))
    made = [figures.per_dataset(entry_list, colors, out, unit)]
    if report["aggregate"]:
        made.append(figures.aggregate_intervals(report["aggregate"], colors, out, unit))
    scores, common = tables.common_matrices(entry_list)
    if scores:
        values = np.concatenate([m.ravel() for m in scores.values()])
        taus = np.linspace(min(0.0, values.min()), max(100.0, values.max()), 101)
        curves, bands = stats.performance_profiles(scores, taus, reps=reps)
        made.append(figures.profiles(taus, curves, bands, colors, out, unit, common))
        report["profiles"] = {"taus": taus.tolist(), "datasets": common,
                              **{m: {"fraction": curves[m].tolist()} for m in curves}}
    if report["improvement"]:
        made.append(figures.improvement(report["improvement"], list(colors), out))
    if any(report["curves"].values()):
        made.append(figures.curves(report["curves"], colors, out, unit))
    o2o_rows = [e for e in entry_list if e["online_algo"]]
    if o2o_rows:
        made.append(figures.o2o(o2o_rows, colors, out, unit))
    return made

