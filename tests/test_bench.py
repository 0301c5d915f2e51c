"""o2o bench on a local Ray instance with 2 workers, the results database, o2o report, and the HTML report in a real
browser (headless Chromium)."""

import dataclasses
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli
from o2o import bench, report, results
from o2o.collect.scripted import collect_pendulum
from o2o.data import write_npz, write_o2o
from o2o.errors import O2OError


def grid(datasets, **kwargs):
    values = dict(algos=["bc", "td3bc"], datasets=[str(d) for d in datasets], seeds=2, steps=200, eval_every=100,
                  eval_episodes=2, online_steps=60, online_eval_every=20, overrides={"hidden_dims": "32,32"})
    values.update(kwargs)
    return bench.Grid(**values)


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    good = write_o2o(collect_pendulum(episodes=6, seed=0), root / "pendulum-mixed")
    broken = collect_pendulum(episodes=2, seed=1)
    path = write_npz(broken, root / "broken.npz")
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files if k != "rewards"}
    np.savez(path, **arrays)  # a dataset without rewards: its cells must fail with a clear error
    return good, path


@pytest.fixture(scope="module")
def finished_bench(datasets, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "b"
    summary = bench.run(grid(datasets), out, workers=2, progress=False)
    return out, summary


def test_grid_runs_every_cell_and_records_failures_without_stopping(finished_bench):
    out, summary = finished_bench
    assert summary["cells"] == 4 and summary["completed"] == 2
    assert sorted(f["cell"] for f in summary["failed"]) == ["bc--broken.npz", "td3bc--broken.npz--td3bc"]
    assert all("rewards" in f["error"] and "\n" not in f["error"] for f in summary["failed"])
    assert (out / "runs" / "bc--broken.npz" / "error.txt").is_file()  # the full traceback, beside the run


def test_database_holds_runs_per_seed_and_every_evaluation_episode(finished_bench):
    out, _ = finished_bench
    conn = results.connect(out / "results.sqlite")
    runs = {(r["algo"], r["seed"]): r for r in results.load(conn)}
    assert set(runs) == {("bc", 0), ("bc", 1), ("td3bc", 0), ("td3bc", 1)}
    bc, td3 = runs[("bc", 0)], runs[("td3bc", 1)]
    assert bc["online_algo"] is None and td3["online_algo"] == "td3bc" and td3["status"] == "completed"
    assert json.loads(td3["config"])["offline"]["agent_config"]["hidden_dims"] == [32, 32]
    assert json.loads(bc["versions"])["jax"]
    assert [e["step"] for e in bc["evaluations"]["offline"]] == [100, 200]
    assert [e["step"] for e in td3["evaluations"]["online"]] == [0, 20, 40, 60]
    for evaluation in td3["evaluations"]["offline"] + td3["evaluations"]["online"]:
        assert len(evaluation["episode_returns"]) == 2
        assert evaluation["return_mean"] == pytest.approx(np.mean(evaluation["episode_returns"]))
        assert evaluation["normalized_score"] is not None and evaluation["success_rate"] is None
    # the round trip: each seed's rows hold exactly what its run directory logged
    logged = [json.loads(line) for line in (Path(td3["online_dir"]) / "metrics.jsonl").read_text().splitlines()]
    logged = [r for r in logged if "episode_returns" in r]
    assert [e["episode_returns"] for e in td3["evaluations"]["online"]] == [r["episode_returns"][1] for r in logged]
    assert [e["normalized_score"] for e in td3["evaluations"]["online"]] == [r["normalized_score_per_seed"][1] for r in logged]
    cells = {r["cell"]: r for r in conn.execute("SELECT * FROM cells")}
    assert cells["td3bc--pendulum-mixed--td3bc"]["status"] == "completed"
    assert cells["bc--broken.npz"]["status"] == "failed"


def test_rerunning_skips_completed_cells_and_retries_failed_ones(finished_bench, datasets):
    out, _ = finished_bench
    done = out / "runs" / "bc--pendulum-mixed" / "offline" / "summary.json"
    before = done.stat().st_mtime_ns
    summary = bench.run(grid(datasets), out, workers=2, progress=False)
    assert summary["completed"] == 2 and len(summary["failed"]) == 2
    assert done.stat().st_mtime_ns == before
    attempts = dict(sqlite3.connect(out / "results.sqlite").execute("SELECT cell, attempts FROM cells"))
    assert attempts["bc--pendulum-mixed"] == 1 and attempts["bc--broken.npz"] == 2


def test_a_different_grid_in_the_same_directory_is_refused(finished_bench, datasets):
    out, _ = finished_bench
    with pytest.raises(O2OError, match="different grid.*steps"):
        bench.run(grid(datasets, steps=300), out, workers=2, progress=False)


def test_report_entries_statistics_and_files(finished_bench, tmp_path):
    out, _ = finished_bench
    summary = report.build([str(out)], tmp_path / "report", reps=300)
    entries = {(e["method"], e["dataset"]): e for e in summary["entries"]}
    assert set(entries) == {("bc", "pendulum-mixed"), ("td3bc\u2192td3bc", "pendulum-mixed")}
    for e in entries.values():
        assert e["seeds"] == 2 and e["iqm_ci"][0] <= e["iqm"] <= e["iqm_ci"][1]
    assert entries[("td3bc\u2192td3bc", "pendulum-mixed")]["start_mean"] is not None
    assert set(summary["aggregate"]) == {"bc", "td3bc\u2192td3bc"}
    from o2o.data import load_dataset
    from o2o.envs import normalized_score

    good = load_dataset(json.loads((out / "bench.json").read_text())["grid"]["datasets"][0])
    behaviour = normalized_score("Pendulum-v1", good.episode_returns.mean(), good.metadata)  # complete 200-step episodes
    assert entries[("bc", "pendulum-mixed")]["data_score"] == pytest.approx(behaviour)
    written = json.loads((tmp_path / "report" / "report.json").read_text())
    assert {f["name"] for f in written["figures"]} >= {"per_dataset", "aggregates", "profiles", "improvement", "curves", "o2o"}
    assert len(written["failures"]) == 2
    for figure in written["figures"]:
        assert (tmp_path / "report" / figure["png"]).stat().st_size > 1000
        assert (tmp_path / "report" / figure["svg"]).is_file()
    assert "| bc | pendulum-mixed | 2 |" in (tmp_path / "report" / "report.md").read_text()
    ogbench_protocol = report.build([str(out)], tmp_path / "report3", reps=300, final="last3")
    for e in ogbench_protocol["entries"]:
        assert e["final_mean"] == pytest.approx(e["last3_mean"]) and e["iqm_ci"][0] <= e["iqm"] <= e["iqm_ci"][1]


def test_report_ingests_plain_run_directories(finished_bench, tmp_path, capsys):
    out, _ = finished_bench
    cell = out / "runs" / "td3bc--pendulum-mixed--td3bc"
    code, stdout, stderr = run_cli(["report", str(cell / "offline"), str(cell / "online"), "--out",
                                    str(tmp_path / "r"), "--reps", "200", "--json"], capsys)
    assert code == 0, stderr
    summary = json.loads(stdout.strip().splitlines()[-1])
    # the offline run is reported once, as the start of its fine-tuned run
    assert [(e["method"], e["seeds"]) for e in summary["entries"]] == [("td3bc\u2192td3bc", 2)]
    assert Path(summary["database"]).is_file() and Path(summary["html"]).is_file()


def test_report_of_nothing_is_a_clear_error(tmp_path, capsys):
    code, _, stderr = run_cli(["report", str(tmp_path)], capsys)
    assert code == 1 and "neither a bench directory" in stderr


def test_bench_cli_exit_status_and_json_line(datasets, tmp_path, capsys):
    good, broken = datasets
    args = ["bench", "--algos", "bc", "--datasets", f"{good},{broken}", "--seeds", "1", "--steps", "100",
            "--eval-every", "100", "--eval-episodes", "1", "--workers", "2", "--out", str(tmp_path / "b"), "--json"]
    code, stdout, _ = run_cli(args, capsys)
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert code == 1 and summary["cells"] == 2 and summary["completed"] == 1 and len(summary["failed"]) == 1
    assert set(summary) == {"bench_dir", "database", "cells", "completed", "failed"}


def test_suites_and_bad_grids_fail_clearly(tmp_path):
    assert set(bench.shipped_suites()) == {"quick", "zoo", "finetuning", "ogbench"}  # as `o2o bench --help` lists them
    finetuning = bench.cells(bench.Grid(**bench.load_suite("finetuning")))
    assert len(finetuning) == 54  # every method on every dataset, fine-tuned without and with SERA's bonus
    assert {c.id for c in finetuning if c.bonus == "sera"} == {c.id + "+sera" for c in finetuning if c.bonus == "none"}
    for given, refusal in ((dict(bonuses=["sera"]), "give --online-steps"),
                           (dict(bonuses=["rnd"], online_steps=10), "choose one of"),
                           (dict(algos=["qc"], bonuses=["sera"], online_steps=10), "has none of")):
        with pytest.raises(O2OError, match=refusal):
            bench.Grid(**{"algos": ["calql", "bc"], "datasets": ["collect:Pendulum-v1:medium"], **given})
    zoo = bench.Grid(**bench.load_suite("zoo"))
    assert len(bench.cells(zoo)) == 27 and zoo.steps == 1_000_000
    # seed-major order: a grid stopped after its first nine cells already holds every dataset at seed 0
    split = bench.cells(dataclasses.replace(zoo, algos=["rebrac"], split_seeds=True, seeds=3))
    assert [c.seeds for c in split[:9]] == [(0,)] * 9 and len({c.dataset for c in split[:9]}) == 9
    assert len({c.id for c in split}) == 27 and split[0].id == "rebrac--" + split[0].label + "--s0"
    with pytest.raises(O2OError, match="no such file"):
        bench.load_suite("nonexistent")
    (tmp_path / "s.toml").write_text('algos = ["iql"]\ndatasets = ["x"]\nstepz = 3\n')
    with pytest.raises(O2OError, match="unknown key.*stepz"):
        bench.load_suite(str(tmp_path / "s.toml"))
    with pytest.raises(O2OError, match="unknown algorithm"):
        bench.Grid(algos=["nope"], datasets=["x"])
    with pytest.raises(O2OError, match="no algorithm of the bench reads a config field 'expectilee'"):
        bench.Grid(algos=["iql"], datasets=["x"], overrides={"expectilee": "0.9"})
    with pytest.raises(O2OError, match="unknown level"):
        bench.Grid(algos=["iql"], datasets=["collect:Hopper-v5:mediocre"])
    g = bench.Grid(algos=["bc", "iql"], datasets=["x"], overrides={"discount": "0.9", "iql.expectile": "0.8"})
    assert g.overrides_for("bc") == {} and g.overrides_for("iql") == {"discount": "0.9", "expectile": "0.8"}


def test_no_transitions_and_no_workers_are_refused_before_ray_starts(tmp_path, capsys, monkeypatch):
    for count in ("0", "-5"):  # 0 collected the default million under the label of collect:Pendulum-v1:medium
        with pytest.raises(O2OError, match=rf"transitions must be at least 1 \(got {count}\)"):
            bench.Grid(algos=["iql"], datasets=[f"collect:Pendulum-v1:medium:{count}"])
    assert bench.dataset_label("collect:Pendulum-v1:medium:20") == "Pendulum-v1-medium-20"

    def ray_started(*args, **kwargs):
        raise AssertionError("Ray started")

    monkeypatch.setattr(bench, "_dispatch", ray_started)
    small = bench.Grid(algos=["iql"], datasets=["collect:Pendulum-v1:medium:20"])
    for flag, given in (("workers", 0), ("workers", -1), ("cpus_per_cell", 0)):
        with pytest.raises(O2OError, match=rf"--{flag.replace('_', '-')} must be at least 1 \(got {given}\)"):
            bench.run(small, tmp_path / "b", progress=False, **{flag: given})
    code, _, err = run_cli(["quickstart", "--workers", "0", "--out", str(tmp_path / "q")], capsys)  # 0 meant all
    assert code == 1 and err == "error: --workers must be at least 1 (got 0)\n"
    assert not (tmp_path / "b").exists() and not (tmp_path / "q").exists()


def test_cells_of_dataset_ids_of_different_envs_and_of_colliding_names(tmp_path):
    ids = ["mujoco/hopper/medium-v0", "mujoco/walker2d/medium-v0"]  # one last part, two envs
    made = bench.cells(bench.Grid(algos=["td3bc"], datasets=ids))
    assert [(c.id, c.label) for c in made] == [("td3bc--mujoco-hopper-medium-v0", "mujoco-hopper-medium-v0"),
                                               ("td3bc--mujoco-walker2d-medium-v0", "mujoco-walker2d-medium-v0")]
    # a bench that recorded an id by its last part, as o2o did before, keeps its cells (and resumes them)
    old = bench.cells(bench.Grid(algos=["td3bc"], datasets=ids[:1]), recorded_labels={"medium-v0"})
    assert [(c.id, c.label) for c in old] == [("td3bc--medium-v0", "medium-v0")]
    # a path and an id of one last part: the id in full on the first run and on every rerun
    (tmp_path / "medium-v0").mkdir()
    mixed = bench.Grid(algos=["td3bc"], datasets=[str(tmp_path / "medium-v0"), ids[0]])
    first = [c.id for c in bench.cells(mixed)]
    assert first == ["td3bc--medium-v0", "td3bc--mujoco-hopper-medium-v0"]
    assert [c.id for c in bench.cells(mixed, recorded_labels={"medium-v0", "mujoco-hopper-medium-v0"})] == first
    # names that differ only in what a cell id leaves out would share one run directory
    for name in ("hopper medium", "hopper_medium"):
        (tmp_path / name).mkdir()
    with pytest.raises(O2OError, match="hopper medium and .*hopper_medium both make cell td3bc--hopper_medium"):
        bench.cells(bench.Grid(algos=["td3bc"], datasets=[str(tmp_path / "hopper medium"),
                                                          str(tmp_path / "hopper_medium")]))
    with pytest.raises(O2OError, match="both make cell"):
        bench.cells(bench.Grid(algos=["td3bc"], datasets=["x", "x"]))


def test_killed_driver_resumes_without_rerunning_finished_cells(datasets, tmp_path, capsys):
    """kill -9 the bench driver once its first cell is recorded; `o2o bench --out BENCH_DIR` then finishes the grid."""
    good, _ = datasets
    out = tmp_path / "b"
    args = ["bench", "--algos", "bc,td3bc", "--datasets", str(good), "--seeds", "1", "--steps", "2000",
            "--eval-every", "1000", "--eval-episodes", "1", "--workers", "1", "--out", str(out), "--quiet"]
    driver = subprocess.Popen([sys.executable, "-c", "from o2o.cli import main; main()", *args],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    first = out / "runs" / "bc--pendulum-mixed" / "offline" / "summary.json"
    deadline = time.time() + 240
    while time.time() < deadline and not _recorded(out, "bc--pendulum-mixed"):
        time.sleep(0.2)
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    assert _recorded(out, "bc--pendulum-mixed"), "the first cell did not finish in time"
    stamp = first.stat().st_mtime_ns
    try:
        code, stdout, stderr = run_cli(["bench", "--out", str(out), "--workers", "1", "--quiet", "--json"], capsys)
    finally:
        os.killpg(driver.pid, signal.SIGKILL) if _alive_group(driver.pid) else None
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert code == 0, stderr
    assert summary["completed"] == 2 and not summary["failed"]
    assert first.stat().st_mtime_ns == stamp
    attempts = dict(sqlite3.connect(out / "results.sqlite").execute("SELECT cell, attempts FROM cells"))
    assert attempts == {"bc--pendulum-mixed": 1, "td3bc--pendulum-mixed": 1}


def _recorded(out: Path, cell: str) -> bool:
    try:
        row = sqlite3.connect(out / "results.sqlite").execute("SELECT status FROM cells WHERE cell = ?", (cell,)).fetchone()
    except sqlite3.Error:
        return False
    return bool(row) and row[0] == "completed"


def _alive_group(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


# ---- the HTML report in a real browser ----

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
CHECK = """<script>
window.addEventListener("load", () => {
  const images = Array.from(document.images);
  document.body.setAttribute("data-check", JSON.stringify({
    images: images.length,
    loaded: images.filter((i) => i.complete && i.naturalWidth > 0).length,
    entries: document.querySelectorAll("#entries tbody tr").length,
    aggregate: document.querySelectorAll("#aggregate tbody tr").length,
  }));
});
</script></body>"""


def _chromium(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", *args],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (Debian: apt-get install chromium)")
def test_html_report_in_headless_chromium(finished_bench, tmp_path):
    out, _ = finished_bench
    summary = report.build([str(out)], tmp_path / "report", reps=300)
    page = Path(summary["html"])
    probe = tmp_path / "probe.html"  # a copy with a checking script: the report itself stays as users get it
    probe.write_text(page.read_text().replace("</body>", CHECK))
    dom = _chromium("--virtual-time-budget=10000", "--dump-dom", probe.as_uri()).stdout
    marker = 'data-check="'
    assert marker in dom, dom[-2000:]
    import html

    check = json.loads(html.unescape(dom.split(marker, 1)[1].split('"', 1)[0]))
    assert check["images"] == 6 and check["loaded"] == 6
    assert check["entries"] == len(summary["entries"]) == 2  # one row per (algorithm, dataset)
    assert check["aggregate"] == 2

    shot = tmp_path / "shot.png"
    _chromium("--window-size=1200,1600", f"--screenshot={shot}", page.as_uri())
    from PIL import Image

    pixels = np.asarray(Image.open(shot).convert("L"), float)
    assert pixels.shape == (1600, 1200)
    assert (pixels < 200).mean() > 0.02 and pixels.std() > 20  # text, tables and figures, not a blank page
