"""What the report pools and what it keeps apart, on fake run directories (config.json, metrics.jsonl and summary.json
as o2o writes them): runs of different envs or data are never seeds of one entry, nor dropped as repeated seeds; a
fine-tuned run is paired with the offline run it started from, wherever the report runs; online settings make variants;
a run being extended is not finished; and the sources of a gathered report are read before its database is replaced."""

import json
import math
import shutil
import sqlite3
import warnings
from pathlib import Path

import pytest

from o2o import report, results
from o2o.errors import O2OError
from o2o.report import render, tables

HOPPER, WALKER = "Hopper-v5", "Walker2d-v5"


def fake_run(path, scores, seeds=(0,), env=HOPPER, source="/data/hopper-medium", kind="offline", algo="iql",
             steps=None, summary_steps=None, content_hash="sha256:" + "a" * 64, minari=False, **settings):
    """A finished run directory as o2o writes it: evaluated at steps 100, 200, ... with `scores` (each a score for
    every seed, or one per seed); an online run takes `init_from`, `out`, `offline_data` and its settings."""
    path.mkdir(parents=True)
    steps = steps or 100 * len(scores)
    offline_data = settings.pop("offline_data", None)
    base = {"algo": algo, "steps": steps, "seeds": len(seeds), "seed": seeds[0]}
    if kind == "offline":
        base["dataset"] = source
    else:
        base.update(offline_dataset=None, init_from=None, out=None, offline_sampling="none")
    config = {"kind": kind, "env_id": env, "seeds": list(seeds), "versions": {"o2o": "test"},
              "settings": {**base, **settings}, "agent_config": {"expectile": 0.7},
              "dataset": {"source": source, "content_hash": content_hash} if source else None,
              "dataset_metadata": {"source_format": "minari"} if minari else {}}
    if offline_data is not None:
        config["offline_data"] = offline_data
    (path / "config.json").write_text(json.dumps(config))
    lines = []
    for i, score in enumerate(scores):
        per_seed = list(score) if isinstance(score, (list, tuple)) else [score] * len(seeds)
        step = 100 * (i + 1) if kind == "offline" else 100 * i
        lines.append({"step": step, "phase": kind, "return_per_seed": per_seed, "normalized_score_per_seed": per_seed})
    (path / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    (path / "summary.json").write_text(json.dumps({"steps": summary_steps or steps, "wall_seconds": 1.0}))
    return path


def fine_tuned(offline, path, scores, **settings):
    """An online run fine-tuned from `offline` (a fake run), recording what o2o records about it."""
    record = json.loads((offline / "config.json").read_text())
    recorded = {k: record["settings"][k] for k in ("algo", "dataset", "steps", "seed", "seeds")}
    return fake_run(path, scores, seeds=record["seeds"], env=record["env_id"], source=record["dataset"]["source"],
                    kind="online", content_hash=record["dataset"]["content_hash"], offline_data=recorded,
                    offline_sampling="union", **settings)


def build(sources, out, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        summary = report.build([str(s) for s in sources], out, reps=100, **kwargs)
    return summary, [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]


def entries(summary):
    return sorted((e["method"], e["dataset"], e["seeds"], e["final_mean"]) for e in summary["entries"])


def written(out):
    return json.loads((out / "report.json").read_text())


# ---- runs of different envs or data ----

def test_minari_ids_of_different_envs_are_different_datasets(tmp_path):
    # mujoco/hopper/medium-v0 and mujoco/walker2d/medium-v0 both end in medium-v0: once one label, Walker2d's seeds
    # were dropped as repeated seeds of Hopper's
    runs = [fake_run(tmp_path / f"{name}{seed}", [score + seed], seeds=(seed,), env=env, minari=True,
                     source=f"mujoco/{name}/medium-v0", content_hash=f"sha256:{name}")
            for name, env, score in (("hopper", HOPPER, 50), ("walker2d", WALKER, 80)) for seed in (0, 1, 2)]
    summary, messages = build(runs, tmp_path / "report")
    assert entries(summary) == [("iql", "mujoco-hopper-medium-v0", 3, 51.0),
                                ("iql", "mujoco-walker2d-medium-v0", 3, 81.0)]
    assert not messages


def test_a_database_that_gave_two_envs_one_label_reports_them_apart(tmp_path):
    conn = results.connect(tmp_path / "old" / "results.sqlite")  # as o2o labelled Minari ids before: the last part
    for name, env, score in (("hopper", HOPPER, 50), ("walker2d", WALKER, 80)):
        run = fake_run(tmp_path / name, [score], seeds=(0, 1), env=env, source=f"mujoco/{name}/medium-v0", minari=True)
        results.ingest_run(conn, run, None, label="medium-v0")
    conn.close()
    summary, messages = build([tmp_path / "old"], tmp_path / "report")
    assert entries(summary) == [("iql", f"medium-v0 ({HOPPER})", 2, 50.0), ("iql", f"medium-v0 ({WALKER})", 2, 80.0)]
    assert not messages


def test_data_of_the_same_name_and_env_but_other_content_is_another_dataset(tmp_path):
    # two benches' datasets/pendulum-mixed, collected differently: same label, same env, other bytes
    runs = [fake_run(tmp_path / f"{tag}{seed}", [score], seeds=(seed,), source=f"/{tag}/datasets/pendulum-mixed",
                     content_hash=f"sha256:{tag * 16}")
            for tag, score in (("1234", 10), ("abcd", 90)) for seed in (0, 1)]
    summary, messages = build(runs, tmp_path / "report")
    assert entries(summary) == [("iql", "pendulum-mixed [12341234]", 2, 10.0),
                                ("iql", "pendulum-mixed [abcdabcd]", 2, 90.0)]
    assert not messages
    assert sorted(run["dataset"] for run in written(tmp_path / "report")["runs"]) == [
        "pendulum-mixed [12341234]"] * 2 + ["pendulum-mixed [abcdabcd]"] * 2


def test_online_runs_from_scratch_are_named_by_their_env(tmp_path):
    runs = [fake_run(tmp_path / f"{env}{seed}", [0, score], seeds=(seed,), env=env, kind="online", algo="sac",
                     source=None) for env, score in ((HOPPER, 30), (WALKER, 60)) for seed in (0, 1)]
    summary, messages = build(runs, tmp_path / "report")
    assert entries(summary) == [("sac", f"online:{HOPPER}", 2, 30.0), ("sac", f"online:{WALKER}", 2, 60.0)]
    assert not messages


# ---- a fine-tuned run and its offline run ----

@pytest.fixture
def fine_tuned_elsewhere(tmp_path, monkeypatch):
    """`o2o finetune runs/iql --out runs/iql-ft` typed in made/; another runs/iql (Walker2d) where the report runs."""
    made = tmp_path / "made"
    offline = fake_run(made / "runs" / "iql", [40], seeds=(0, 1))
    fine_tuned(offline, made / "runs" / "iql-ft", [40, 30, 70], init_from="runs/iql", out="runs/iql-ft")
    fake_run(tmp_path / "runs" / "iql", [99], seeds=(0, 1), env=WALKER, source="/data/walker2d-medium",
             content_hash="sha256:" + "b" * 64)
    monkeypatch.chdir(tmp_path)
    return made


def test_a_fine_tuned_run_is_paired_with_its_offline_run_wherever_the_report_runs(fine_tuned_elsewhere, tmp_path):
    offline, online = results.describe_run_dir(fine_tuned_elsewhere / "runs" / "iql-ft")
    made = fine_tuned_elsewhere.resolve()
    assert (offline, online) == (made / "runs" / "iql", made / "runs" / "iql-ft")
    summary, _ = build([fine_tuned_elsewhere / "runs" / "iql-ft"], tmp_path / "report")
    [entry] = summary["entries"]
    assert (entry["dataset"], entry["offline_mean"], entry["final_mean"]) == ("hopper-medium", 40.0, 70.0)


def test_an_offline_run_that_is_not_the_one_fine_tuned_from_is_refused(fine_tuned_elsewhere, tmp_path):
    config = fine_tuned_elsewhere / "runs" / "iql-ft" / "config.json"
    record = json.loads(config.read_text())
    record["settings"]["out"] = str(tmp_path / "elsewhere")  # nothing left to say where runs/iql was typed
    config.write_text(json.dumps(record))
    with pytest.raises(O2OError, match=r"runs/iql is not that run as it was then \(env 'Walker2d-v5' there, "
                                       r"'Hopper-v5' recorded by the fine-tuned run\)") as refused:
        results.describe_run_dir(fine_tuned_elsewhere / "runs" / "iql-ft")
    assert "\n" not in str(refused.value)


def test_an_offline_run_extended_after_its_fine_tuning_is_reported_as_it_was_fine_tuned_from(tmp_path):
    # `o2o train --resume runs/iql --steps 400` after `o2o finetune runs/iql`: the same run, its curve cut at 200
    offline = fake_run(tmp_path / "iql", [30, 40], seeds=(0,))
    online = fine_tuned(offline, tmp_path / "iql-ft", [40, 70], init_from=str(offline))
    config = offline / "config.json"
    record = json.loads(config.read_text())
    record["settings"]["steps"], record["extensions"] = 400, [{"from_steps": 200, "to_steps": 400}]
    config.write_text(json.dumps(record))
    (offline / "metrics.jsonl").write_text("".join(json.dumps(
        {"step": step, "phase": "offline", "return_per_seed": [score], "normalized_score_per_seed": [score]}) + "\n"
        for step, score in ((100, 30), (200, 40), (300, 90), (400, 95))))
    conn = results.connect(tmp_path / "results.sqlite")
    results.ingest_run(conn, *results.describe_run_dir(online))
    row = conn.execute("SELECT id, offline_steps FROM runs").fetchone()
    assert row["offline_steps"] == 200
    assert [r["step"] for r in conn.execute("SELECT step FROM evaluations WHERE run_id = ? AND phase = 'offline' "
                                            "ORDER BY step", (row["id"],))] == [100, 200]


def test_runs_moved_together_are_paired_beside_each_other(tmp_path):
    offline = fake_run(tmp_path / "cluster" / "iql", [30, 40])
    fine_tuned(offline, tmp_path / "cluster" / "iql-ft", [40, 70], init_from=str(offline))
    shutil.move(tmp_path / "cluster", tmp_path / "laptop")  # the absolute path it recorded is gone
    assert results.describe_run_dir(tmp_path / "laptop" / "iql-ft")[0] == (tmp_path / "laptop" / "iql").resolve()


# ---- variants, unfinished runs, unscored runs ----

def test_fine_tunings_that_differ_only_in_online_settings_are_variants(tmp_path):
    offline = fake_run(tmp_path / "iql", [40], seeds=(0, 1))
    runs = [fine_tuned(offline, tmp_path / f"utd{utd}", [40, [final, final + 1]], init_from=str(offline), utd=utd)
            for utd, final in ((1, 50), (20, 90))]
    summary, messages = build(runs, tmp_path / "report")
    assert entries(summary) == [("iql→iql (online utd=1)", "hopper-medium", 2, 50.5),
                                ("iql→iql (online utd=20)", "hopper-medium", 2, 90.5)]
    assert not messages
    recent = tables.variant({"config": json.dumps({"online": {"settings": {"offline_sampling": "recent"}}})})
    assert recent["online offline_fraction"] == 0.1  # a setting the run does not record is its default


def test_a_run_being_extended_is_not_finished(tmp_path):
    # `o2o train --resume RUN --steps 400` on a 200-step run: config.json says 400, summary.json is still the 200's
    extended = fake_run(tmp_path / "extended", [30, 40, 50], seeds=(1,), steps=400, summary_steps=200)
    done = fake_run(tmp_path / "done", [60, 70, 80, 90], seeds=(0,), steps=400)
    conn = results.connect(tmp_path / "results.sqlite")
    results.ingest_run(conn, extended, None, status="completed")  # a bench's word is checked against the directory
    assert conn.execute("SELECT status FROM runs").fetchone()[0] == "incomplete"
    conn.close()
    summary, _ = build([extended, done], tmp_path / "report")
    assert entries(summary) == [("iql", "hopper-medium", 1, 90.0)]
    assert [f["status"] for f in written(tmp_path / "report")["failures"]] == ["incomplete"]


def test_a_fine_tuned_run_without_online_evaluations_has_no_final_score(tmp_path):
    offline = fake_run(tmp_path / "iql", [40], seeds=(0,))
    unscored = fine_tuned(offline, tmp_path / "ft", [], init_from=str(offline), eval_episodes=0)
    scored = fake_run(tmp_path / "other", [55], seeds=(1,))
    summary, _ = build([unscored, scored], tmp_path / "report")
    assert entries(summary) == [("iql", "hopper-medium", 1, 55.0)]  # not iql→iql at the offline run's 40
    assert written(tmp_path / "report")["failures"] == [
        {"name": "iql→iql / hopper-medium / seed 0", "status": "not counted",
         "error": "fine-tuned, but no online evaluation to score it by"}]


def test_a_missing_score_is_never_replaced_by_one_in_another_unit():
    # a NaN normalized score is stored as NULL: the run's unit stays the normalized score, its return is not used
    evaluations = [{"step": s, "normalized_score": v, "success_rate": None, "return_mean": -1000.0}
                   for s, v in ((100, 20.0), (200, None))]
    run = {"algo": "iql", "online_algo": None, "dataset": "d", "seed": 0, "status": "completed",
           "evaluations": {"offline": evaluations}}
    scores = tables.run_scores(run)
    assert scores.kind == "normalized" and math.isnan(scores.curves["offline"][1][1])
    assert (scores.last, scores.not_counted) == (None, "no normalized score at offline step 200 (NaN)")
    nothing = tables.run_scores({**run, "evaluations": {"offline": [{**evaluations[1], "return_mean": None}]}})
    assert nothing.last is None and nothing.kind == "return"  # no score at all: no unit to switch from, no crash


# ---- gathering databases ----

def imported(method, scores, dataset="hopper-medium"):
    return [{"method": method, "dataset": dataset, "seed": seed, "env": HOPPER, "source": None,
             "config": {"imported": {"file": f"/{method}.csv"}},
             "evaluations": {"offline": [{"step": 100, "normalized_score": score}]}}
            for seed, score in enumerate(scores)]


def test_a_source_at_the_reports_own_database_is_read_before_it_is_replaced(tmp_path, monkeypatch):
    # `o2o report report other.sqlite`: ./report holds an earlier report whose database is the only copy of its imports
    monkeypatch.chdir(tmp_path)
    earlier = results.connect(tmp_path / "report" / "results.sqlite")
    results.import_runs(earlier, imported("calql (reference)", [10, 20, 30]))
    earlier.close()
    (tmp_path / "report" / "report.json").write_text("{}")
    other = results.connect(tmp_path / "other.sqlite")
    results.import_runs(other, imported("iql (reference)", [40, 50]))
    other.close()
    summary, _ = build(["report", "other.sqlite"], None)
    assert {e["method"]: e["seeds"] for e in summary["entries"]} == {"calql (reference)": 3, "iql (reference)": 2}
    gathered = sqlite3.connect(tmp_path / "report" / "results.sqlite")
    assert gathered.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 5
    assert sorted(p.name for p in (tmp_path / "report").iterdir() if "sqlite" in p.name) == ["results.sqlite"]


def test_a_cell_failed_in_one_bench_stays_beside_the_same_cell_completed_in_another(tmp_path):
    for bench, status, seeds in (("a", "failed", (0, 1)), ("b", "completed", (2, 3))):
        run = fake_run(tmp_path / bench / "runs" / "iql--hopper-medium" / "offline", [50], seeds=seeds)
        conn = results.connect(tmp_path / bench / "results.sqlite")
        results.set_cell(conn, "iql--hopper-medium", algo="iql", dataset="hopper-medium", seeds=list(seeds),
                         status=status, error="out of memory" if status == "failed" else None)
        results.ingest_run(conn, run, None, cell="iql--hopper-medium", status=status, label="hopper-medium")
        conn.close()
    summary, _ = build([tmp_path / "a", tmp_path / "b"], tmp_path / "report")
    assert entries(summary) == [("iql", "hopper-medium", 2, 50.0)]
    failures = written(tmp_path / "report")["failures"]
    assert failures == [{"name": "a/iql--hopper-medium", "status": "failed", "error": "out of memory"}]


# ---- statistics and figures ----

def test_probability_of_improvement_uses_every_run_of_each_method():
    # the first three of six runs are the low ones: cut to the other method's three runs, X never beats Y
    entry_list = [{"method": "x", "dataset": "d", "kind": "normalized", "final_per_seed": [0, 0, 0, 100, 100, 100]},
                  {"method": "y", "dataset": "d", "kind": "normalized", "final_per_seed": [50, 50, 50]}]
    pairs = {(p["x"], p["y"]): p for p in tables.improvement(entry_list, reps=200)}
    assert pairs[("x", "y")]["probability"] == pytest.approx(0.5)
    assert pairs[("x", "y")]["runs"] == {"x": 6, "y": 3}
    table = next(t for t in render.tables({"protocol": "last", "unit": "normalized score", "entries": [],
                                           "last3_short": [], "aggregate": {}, "improvement": list(pairs.values()),
                                           "datasets": [], "failures": [], "runs": []})
                 if t["id"] == "improvement")
    assert "runs per dataset: x 6, y 3" in table["note"]


def test_a_dollar_in_a_method_name_is_drawn_as_text(tmp_path):
    conn = results.connect(tmp_path / "bench" / "results.sqlite")
    results.import_runs(conn, imported("sweep $\\lambda_{max$ run", [10, 20]) + imported("ref $x^$", [30, 40]))
    conn.close()
    summary, _ = build([tmp_path / "bench"], tmp_path / "report")
    assert len(summary["entries"]) == 2
    assert all((tmp_path / "report" / f["png"]).stat().st_size > 1000 for f in written(tmp_path / "report")["figures"])


def test_the_parity_database_keeps_its_dataset_names(tmp_path):
    # one env and one content per label there: o2o's runs and the imported reference runs stay on one dataset
    shutil.copy(Path(__file__).parent.parent / "benchmarks" / "results" / "parity" / "results.sqlite", tmp_path)
    conn = results.connect(tmp_path / "results.sqlite")  # a copy: the committed file stays as it is
    loaded = results.load(conn)
    conn.close()
    scores = tables.distinguish_datasets([tables.run_scores(r) for r in loaded])
    assert [s.dataset for s in scores] == [r["dataset"] for r in loaded]
