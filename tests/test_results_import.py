"""`o2o results import`: other code's per-seed curves in a results database, read back exactly, refused with one line
when malformed (the database untouched), idempotent, accepted by a database from before the import existed, and
reported beside o2o's own runs with the same statistics."""

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from conftest import run_cli
from o2o import external, report, results
from o2o.envs import reference_returns
from o2o.report import tables

FIXTURES = Path(__file__).parent / "fixtures"
OLD_DATABASE = FIXTURES / "results_a0e0db" / "results.sqlite"  # written by o2o before the import existed

CSV = """method,dataset,seed,step,score,phase,metric,env,source
ReBRAC (authors' code),hopper-medium,0,1000,40.5,offline,normalized,Hopper-v5,github.com/tinkoff-ai/CORL@6afec90
ReBRAC (authors' code),hopper-medium,0,2000,55.25,offline,normalized,Hopper-v5,github.com/tinkoff-ai/CORL@6afec90
ReBRAC (authors' code),hopper-medium,1,1000,38,offline,normalized,Hopper-v5,github.com/tinkoff-ai/CORL@6afec90
ReBRAC (authors' code),hopper-medium,1,2000,61,offline,normalized,Hopper-v5,github.com/tinkoff-ai/CORL@6afec90
ReBRAC (authors' code),hopper-medium,1,0,61,online,normalized,Hopper-v5,github.com/tinkoff-ai/CORL@6afec90
ReBRAC (authors' code),hopper-medium,1,500,70,online,normalized,Hopper-v5,github.com/tinkoff-ai/CORL@6afec90
IQL (authors' code),hopper-medium,3,1000,1500,,return,Hopper-v5,
IQL (authors' code),cube-single-task2,0,1000,62.5,offline,success,,
"""


def rows(database: Path) -> list[tuple]:
    """Every imported evaluation as (method, dataset, seed, phase, step, return, normalized, success, env, source)."""
    conn = sqlite3.connect(database)
    found = conn.execute(
        "SELECT r.algo, r.dataset, r.seed, e.phase, e.step, e.return_mean, e.normalized_score, e.success_rate, r.env,"
        " r.source FROM runs r JOIN evaluations e ON e.run_id = r.id WHERE r.origin = 'imported'"
        " ORDER BY r.algo, r.dataset, r.seed, e.phase, e.step").fetchall()
    conn.close()
    return found


def normalized(env: str, value: float) -> float:
    low, high = reference_returns(env)
    return 100 * (value - low) / (high - low)


def test_a_csv_import_round_trip_holds_every_line_of_the_file(tmp_path, capsys):
    path = tmp_path / "reference.csv"
    path.write_text(CSV)
    before = path.read_bytes()
    code, out, err = run_cli(["results", "import", str(path), "--into", str(tmp_path / "bench")], capsys)
    assert code == 0, err
    assert "ReBRAC (authors' code) on hopper-medium: seeds 0, 1, 6 evaluations" in out
    corl = "github.com/tinkoff-ai/CORL@6afec90"
    assert rows(tmp_path / "bench" / "results.sqlite") == sorted([
        # a success rate without reference returns is also the normalized score, as o2o scores goal tasks
        ("IQL (authors' code)", "cube-single-task2", 0, "offline", 1000, None, 62.5, 62.5, None, None),
        # a return gets D4RL's normalized score, as o2o's runs do
        ("IQL (authors' code)", "hopper-medium", 3, "offline", 1000, 1500.0,
         pytest.approx(normalized("Hopper-v5", 1500)), None, "Hopper-v5", None),
        *[("ReBRAC (authors' code)", "hopper-medium", seed, phase, step, None, score, None, "Hopper-v5", corl)
          for seed, phase, step, score in ((0, "offline", 1000, 40.5), (0, "offline", 2000, 55.25),
                                           (1, "offline", 1000, 38.0), (1, "offline", 2000, 61.0),
                                           (1, "online", 0, 61.0), (1, "online", 500, 70.0))]])
    conn = results.connect(tmp_path / "bench" / "results.sqlite")
    runs = {(r["algo"], r["seed"]): r for r in results.load(conn)}
    rebrac = runs[("ReBRAC (authors' code)", 1)]
    assert rebrac["origin"] == "imported" and rebrac["status"] == "completed" and rebrac["cell"] is None
    assert rebrac["online_algo"] == "ReBRAC (authors' code)"  # both phases: an offline-to-online run
    assert runs[("ReBRAC (authors' code)", 0)]["online_algo"] is None
    assert (rebrac["offline_steps"], rebrac["online_steps"]) == (2000, 500)
    assert json.loads(rebrac["config"])["imported"]["file"] == str(path.resolve())
    assert path.read_bytes() == before  # the input is never modified


def test_a_json_import_gives_the_same_rows_as_the_csv(tmp_path, capsys):
    (tmp_path / "reference.csv").write_text(CSV)
    lines = [dict(zip(CSV.splitlines()[0].split(","), line.split(","))) for line in CSV.splitlines()[1:]]
    listed = [{k: v for k, v in line.items() if v} for line in lines]
    for record in listed[:2]:  # numbers may be JSON numbers or strings
        record.update(seed=int(record["seed"]), step=int(record["step"]), score=float(record["score"]))
    (tmp_path / "list.json").write_text(json.dumps(listed))
    corl = "github.com/tinkoff-ai/CORL@6afec90"
    (tmp_path / "object.json").write_text(json.dumps({"source": corl, "records": [  # the source once, for every record
        {k: v for k, v in record.items() if k != "source"} for record in listed if record.get("source") == corl]}))
    for name in ("reference.csv", "list.json", "object.json"):
        code, _, err = run_cli(["results", "import", str(tmp_path / name), "--into", str(tmp_path / f"{name}.sqlite")],
                               capsys)
        assert code == 0, err
    from_csv = rows(tmp_path / "reference.csv.sqlite")
    assert rows(tmp_path / "list.json.sqlite") == from_csv
    assert rows(tmp_path / "object.json.sqlite") == [r for r in from_csv if r[-1] == corl]


BAD = {  # file name, content, options -> what the one-line error names
    "missing column": ("a.csv", "method,dataset,seed,step\nm,d,0,10\n", [], "a.csv: no column 'score'"),
    "score not a number": ("a.csv", "method,dataset,seed,step,score\nm,d,0,10,1\nm,d,0,20,abc\n", [],
                           "a.csv line 3: score 'abc' is not a number"),
    "score not finite": ("a.csv", "method,dataset,seed,step,score\nm,d,0,10,nan\n", [],
                         "a.csv line 2: score is nan; every score must be finite"),
    "duplicate step": ("a.csv", "method,dataset,seed,step,score\nm,d,0,10,1\nm,d,1,10,1\nm,d,0,10,2\n", [],
                       "a.csv line 4: repeats a.csv line 2: method 'm', dataset 'd', seed 0, offline step 10"),
    "negative step": ("a.csv", "method,dataset,seed,step,score\nm,d,0,-5,1\n", [],
                      "a.csv line 2: step -5 is negative"),
    "seed not an integer": ("a.csv", "method,dataset,seed,step,score\nm,d,0.5,10,1\n", [],
                            "a.csv line 2: seed '0.5' is not an integer"),
    "unknown column": ("a.csv", "method,dataset,seed,step,score,normalized\nm,d,0,10,1,true\n", [],
                       "a.csv line 1: unknown column 'normalized'"),
    "unknown phase": ("a.csv", "method,dataset,seed,step,score,phase\nm,d,0,10,1,finetune\n", [],
                      "a.csv line 2: phase 'finetune'; expected offline or online"),
    "ragged line": ("a.csv", "method,dataset,seed,step,score\nm,d,0,10\n", [], "a.csv line 2: 4 fields"),
    "two metrics in a run": ("a.csv", "method,dataset,seed,step,score,metric\nm,d,0,10,1,return\n"
                             "m,d,0,20,1,normalized\n", [], "a.csv line 3: metric 'normalized' differs from a.csv line 2's 'return'"),
    "success above 100%": ("a.csv", "method,dataset,seed,step,score,metric\nm,d,0,10,150,success\n", [],
                           "a.csv line 2: success rate 150 is outside 0-100"),
    "--method on two methods": ("a.csv", "method,dataset,seed,step,score\nm,d,0,10,1\nn,d,0,10,1\n",
                                ["--method", "x"], "a.csv: holds 2 values of method (m, n)"),
    "no method anywhere": ("a.csv", "dataset,seed,step,score\nd,0,10,1\n", [],
                           "a.csv: no column 'method' and no --method"),
    "json score": ("a.json", '[{"method": "m", "dataset": "d", "seed": 0, "step": 1, "score": 1},'
                   ' {"method": "m", "dataset": "d", "seed": 0, "step": 2, "score": "x"}]', [],
                   "a.json item[1]: score 'x' is not a number"),
    "json record field": ("a.json", '{"records": [{"method": "m", "dataset": "d", "seed": 0, "step": 1, "scor": 1}]}',
                          [], "a.json records[0]: unknown field 'scor'"),
    "json missing field": ("a.json", '{"records": [{"method": "m", "dataset": "d", "step": 1, "score": 1}]}',
                           [], "a.json: no seed (a.json records[0] has none); give --seed"),
    "not json": ("a.json", "{'records': []}", [], "a.json: not valid JSON"),
    "empty": ("a.csv", "", [], "a.csv: empty"),
    "empty step": ("a.csv", "method,dataset,seed,step,score\nm,d,0,,1\nm,d,0,10,2\n", [], "a.csv line 2: no step"),
    "empty score": ("a.csv", "method,dataset,seed,step,score\nm,d,0,10,2\nm,d,0,20,\n", [], "a.csv line 3: no score"),
    "json without step": ("a.json", '[{"method": "m", "dataset": "d", "seed": 0, "score": 3}]', [],
                          "a.json item[0]: no step"),
    "json null score": ("a.json", '{"records": [{"method": "m", "dataset": "d", "seed": 0, "step": 1, "score": null}]}',
                        [], "a.json records[0]: no score"),
    "a file given twice": ("a.csv", "method,dataset,seed,step,score\nm,d,0,10,1\n", ["a.csv"],
                           "a.csv: given twice; name each FILE once"),
}


@pytest.fixture
def database_with_an_import(tmp_path, capsys):
    (tmp_path / "good.csv").write_text(CSV)
    assert run_cli(["results", "import", str(tmp_path / "good.csv"), "--into", str(tmp_path / "bench")], capsys)[0] == 0
    return tmp_path / "bench" / "results.sqlite"


@pytest.mark.parametrize("case", BAD)
def test_bad_input_is_one_line_naming_the_place_and_leaves_the_database_as_it_was(case, database_with_an_import,
                                                                               tmp_path, capsys, monkeypatch):
    name, content, options, message = BAD[case]
    monkeypatch.chdir(tmp_path)
    Path(name).write_text(content)
    before = database_with_an_import.read_bytes()
    code, _, err = run_cli(["results", "import", name, "--into", str(database_with_an_import), *options], capsys)
    assert code == 1 and err.startswith("error: ") and err.count("\n") == 1, err
    assert message in err
    assert database_with_an_import.read_bytes() == before
    code, _, err = run_cli(["results", "import", name, "--into", "new-bench", *options], capsys)
    assert code == 1 and not Path("new-bench").exists()  # nothing is made for a file that cannot be read


def test_reimporting_a_file_replaces_what_it_imported(database_with_an_import, tmp_path, capsys):
    first = rows(database_with_an_import)
    code, out, _ = run_cli(["results", "import", str(tmp_path / "good.csv"), "--into", str(tmp_path / "bench")], capsys)
    assert code == 0 and "replaced 4 run(s) imported before" in out
    assert rows(database_with_an_import) == first
    conn = sqlite3.connect(database_with_an_import)
    assert conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 4
    # the file changed since: seed 0 of ReBRAC dropped, a score corrected; its earlier rows go, none stays behind
    (tmp_path / "good.csv").write_text("\n".join(line for line in CSV.splitlines() if ",0,1000,40.5," not in line
                                                 and ",0,2000,55.25," not in line).replace(",38,", ",39,"))
    assert run_cli(["results", "import", str(tmp_path / "good.csv"), "--into", str(tmp_path / "bench")], capsys)[0] == 0
    corrected = [r[:6] + (39.0,) + r[7:] if r[2:5] == (1, "offline", 1000) else r for r in first
                 if (r[0], r[2]) != ("ReBRAC (authors' code)", 0)]
    assert rows(database_with_an_import) == corrected


def test_a_database_from_before_the_import_still_loads_and_accepts_an_import(tmp_path, capsys):
    database = tmp_path / "results.sqlite"
    shutil.copy(OLD_DATABASE, database)
    raw = sqlite3.connect(database)
    assert raw.execute("PRAGMA user_version").fetchone()[0] == 0
    assert "origin" not in {row[1] for row in raw.execute("PRAGMA table_info(runs)")}
    old_runs = raw.execute("SELECT id, key, algo, online_algo, dataset, seed, status FROM runs ORDER BY id").fetchall()
    old_evaluations = raw.execute("SELECT * FROM evaluations ORDER BY run_id, phase, step").fetchall()
    raw.close()

    conn = results.connect(database)  # migrates: rows kept, o2o's runs marked as such
    loaded = results.load(conn)
    conn.close()
    assert [(r["id"], r["key"], r["algo"], r["online_algo"], r["dataset"], r["seed"], r["status"]) for r in loaded] \
        == old_runs
    assert {r["origin"] for r in loaded} == {"o2o"}
    raw = sqlite3.connect(database)
    assert raw.execute("SELECT * FROM evaluations ORDER BY run_id, phase, step").fetchall() == old_evaluations
    assert raw.execute("PRAGMA user_version").fetchone()[0] == results.SCHEMA_VERSION
    raw.close()

    (tmp_path / "ref.csv").write_text("method,dataset,seed,step,score\nIQL (authors' code),pendulum,0,100,-20\n")
    code, _, err = run_cli(["results", "import", str(tmp_path / "ref.csv"), "--into", str(database)], capsys)
    assert code == 0, err
    conn = results.connect(database)  # opening again changes nothing
    assert sorted(r["origin"] for r in results.load(conn)) == ["imported", "o2o", "o2o"]


# The reference's curves for the report test, beside the fixture's iql→iql runs on pendulum (seeds 0 and 1: offline
# update 100, online steps 0 and 20; final normalized scores 11.948 and 37.145).
REFERENCE = """method,dataset,seed,step,score,phase
{lines}"""
CURVES = {0: [(-20, 0.0, 10.0, 30.0)], 1: [(-30, -5.0, 15.0, 40.0)], 2: [(-10, 5.0, 20.0, 50.0)]}


def reference_csv(method: str) -> str:
    lines = []
    for seed, ((offline, *online),) in CURVES.items():
        lines.append(f"{method},pendulum,{seed},100,{offline},offline")
        lines += [f"{method},pendulum,{seed},{step},{score},online" for step, score in zip((0, 10, 20), online)]
    return REFERENCE.format(lines="\n".join(lines))


def test_report_shows_imported_runs_beside_o2os_with_the_same_statistics(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the fixture's dataset ("pendulum", relative) is absent: the report goes without it
    shutil.copytree(OLD_DATABASE.parent, tmp_path / "bench")
    (tmp_path / "ref.csv").write_text(reference_csv("IQL (authors' code)"))
    assert run_cli(["results", "import", "ref.csv", "--into", "bench", "--source", "github.com/example/iql@0123abc"],
                   capsys)[0] == 0
    code, out, err = run_cli(["report", "bench", "--reps", "200", "--json"], capsys)
    assert code == 0, err
    summary = json.loads(out.splitlines()[-1])
    entries = {e["method"]: e for e in summary["entries"]}
    assert set(entries) == {"iql\u2192iql", "IQL (authors' code)"}
    ours, theirs = entries["iql\u2192iql"], entries["IQL (authors' code)"]
    assert (ours["seeds"], ours["imported"]) == (2, False)
    assert ours["final_mean"] == pytest.approx((11.948008382266181 + 37.145323810161194) / 2)
    assert (theirs["seeds"], theirs["imported"], theirs["sources"]) == (3, True, ["github.com/example/iql@0123abc"])
    assert theirs["final_mean"] == pytest.approx((30 + 40 + 50) / 3)  # the last online evaluation
    assert theirs["last3_mean"] == pytest.approx(((0 + 10 + 30) + (-5 + 15 + 40) + (5 + 20 + 50)) / 9)
    assert theirs["offline_mean"] == pytest.approx(-20) and theirs["start_mean"] == pytest.approx(0.0)
    assert set(summary["aggregate"]) == set(entries)

    written = json.loads((tmp_path / "bench" / "report" / "report.json").read_text())
    curves = written["curves"]
    assert curves["online"]["IQL (authors' code)"]["steps"] == [0, 10, 20]
    assert curves["online"]["iql\u2192iql"]["steps"] == [0, 20]
    assert curves["offline"]["IQL (authors' code)"]["steps"] == curves["offline"]["iql\u2192iql"]["steps"] == [100]
    assert curves["online"]["IQL (authors' code)"]["iqm"][-1] == pytest.approx(40.0)  # IQM of 30, 40, 50
    assert curves["online"]["IQL (authors' code)"]["imported"] is True
    assert (tmp_path / "bench" / "report" / "figures" / "curves.png").stat().st_size > 1000
    markdown = (tmp_path / "bench" / "report" / "report.md").read_text()
    assert "## Imported results" in markdown and "github.com/example/iql@0123abc" in markdown
    assert f"imported from {tmp_path.resolve() / 'ref.csv'}" in markdown

    with pytest.warns(RuntimeWarning, match="iql→iql / pendulum / seed 0 \\(2 evaluations\\)"):  # not theirs: 3
        last3 = report.build(["bench/results.sqlite"], "report3", reps=200, final="last3")  # a database file works too
    theirs = {e["method"]: e for e in last3["entries"]}["IQL (authors' code)"]
    assert theirs["final_mean"] == pytest.approx(theirs["last3_mean"]) and theirs["iqm_ci"][0] <= theirs["iqm"]


def test_report_of_several_databases_copies_their_imported_runs(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the fixture's runs, relative to here, are ingested again from their directories
    for run in ("old-iql", "old-iql-ft"):
        shutil.copytree(FIXTURES / "run_dirs_c03eb16" / run, run)
    for bench in ("a", "b"):
        shutil.copytree(OLD_DATABASE.parent, bench)
    (tmp_path / "ref.csv").write_text(reference_csv("IQL (authors' code)"))
    assert run_cli(["results", "import", "ref.csv", "--into", "a"], capsys)[0] == 0
    summary = report.build(["a", "b"], "gathered", reps=100)
    assert {e["method"]: e["seeds"] for e in summary["entries"]} == {"iql→iql": 2, "IQL (authors' code)": 3}


def test_a_run_whose_directory_is_gone_is_reported_as_its_database_stores_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for run in ("old-iql", "old-iql-ft"):
        shutil.copytree(FIXTURES / "run_dirs_c03eb16" / run, run)
    for bench in ("a", "b"):
        shutil.copytree(OLD_DATABASE.parent, bench)
    def scores(summary):
        return {e["method"]: (e["seeds"], e["final_mean"], e["offline_mean"], e["cumulative_regret"])
                for e in summary["entries"]}

    before = scores(report.build(["a", "b"], "with-dirs", reps=100))
    shutil.rmtree("old-iql-ft")  # the fine-tuned run moved away; its offline run is still here
    with pytest.warns(RuntimeWarning, match="^old-iql-ft: no run directory any more; 2 seed\\(s\\) reported as a"):
        after = report.build(["a", "b"], "without", reps=100)
    assert scores(after) == before
    stored = sqlite3.connect(tmp_path / "without" / "results.sqlite").execute(
        "SELECT COUNT(*), COUNT(DISTINCT e.phase) FROM runs r JOIN evaluations e ON e.run_id = r.id").fetchone()
    assert stored == sqlite3.connect(tmp_path / "with-dirs" / "results.sqlite").execute(
        "SELECT COUNT(*), COUNT(DISTINCT e.phase) FROM runs r JOIN evaluations e ON e.run_id = r.id").fetchone()


def test_an_imported_method_never_pools_with_an_o2o_method_of_the_same_name():
    evaluation = {"step": 10, "normalized_score": 50.0, "success_rate": None, "return_mean": None}
    ours = {"algo": "iql", "online_algo": None, "dataset": "d", "seed": 0, "status": "completed", "origin": "o2o",
            "evaluations": {"offline": [evaluation]}}
    theirs = {**ours, "origin": "imported", "source": "x", "config": json.dumps({"imported": {"file": "/f.csv"}})}
    scores = tables.separate_imported([tables.run_scores(ours), tables.run_scores(theirs)])
    assert [(s.method, s.imported, s.file) for s in scores] == [("iql", False, None),
                                                                ("iql (imported)", True, "/f.csv")]


def write_d3rlpy_log(directory: Path, offline: list[tuple[int, int, float]], online: list[tuple[int, int, float]]):
    """A run directory as d3rlpy's FileAdapter writes it: one headerless `epoch,step,value` CSV per metric."""
    directory.mkdir(parents=True)
    (directory / "params.json").write_text(json.dumps({"config": {"type": "cql"}}))
    (directory / "critic_loss.csv").write_text("1,1000,3.5\n2,2000,2.5\n")  # a loss: not a score, not read
    (directory / "environment.csv").write_text("".join(f"{e},{s},{v}\n" for e, s, v in offline))
    if online:
        (directory / "evaluation.csv").write_text("".join(f"{e},{s},{v}\n" for e, s, v in online))


def test_phase_option_names_the_phase_of_a_file_without_one(tmp_path, capsys):
    path = tmp_path / "online.csv"
    path.write_text("method,dataset,seed,step,score\nSUNG (authors' code),pendulum-poor,0,0,7.5\n"
                    "SUNG (authors' code),pendulum-poor,0,1000,60\n")
    into = str(tmp_path / "bench")
    code, _, err = run_cli(["results", "import", str(path), "--phase", "later", "--into", into], capsys)
    assert code == 1 and "--phase 'later'; expected offline or online" in err
    assert run_cli(["results", "import", str(path), "--phase", "online", "--into", into], capsys)[0] == 0
    assert [(r[3], r[4], r[6]) for r in rows(tmp_path / "bench" / "results.sqlite")] == [
        ("online", 0, 7.5), ("online", 1000, 60.0)]


def test_d3rlpy_logs_import_with_their_returns_normalized(tmp_path, capsys):
    logs = tmp_path / "d3rlpy_logs"
    write_d3rlpy_log(logs / "CQL_hopper-medium-v2_0_20240101", [(1, 1000, 1200.5), (2, 2000, 2400.0)],
                     [(1, 500, 2500.0)])
    write_d3rlpy_log(logs / "CQL_hopper-medium-v2_1_20240101", [(1, 1000, 900.0), (2, 2000, 2100.0)], [])
    args = ["results", "import", str(logs / "CQL_hopper-medium-v2_0_20240101"),
            str(logs / "CQL_hopper-medium-v2_1_20240101" / "environment.csv"), "--method", "CQL (d3rlpy)",
            "--dataset", "hopper-medium", "--env", "Hopper-v5", "--into", str(tmp_path / "bench")]
    code, _, err = run_cli(args, capsys)
    assert code == 1 and "no seed (a d3rlpy log names none); give --seed" in err
    code, _, err = run_cli([*args, "--seed", "0", "--seed", "1", "--source", "d3rlpy 2.8.1 reproductions/cql.py"],
                           capsys)
    assert code == 0, err
    found = [(r[2], r[3], r[4], r[5], r[6]) for r in rows(tmp_path / "bench" / "results.sqlite")]
    assert found == [(0, "offline", 1000, 1200.5, pytest.approx(normalized("Hopper-v5", 1200.5))),
                     (0, "offline", 2000, 2400.0, pytest.approx(normalized("Hopper-v5", 2400.0))),
                     (0, "online", 500, 2500.0, pytest.approx(normalized("Hopper-v5", 2500.0))),
                     (1, "offline", 1000, 900.0, pytest.approx(normalized("Hopper-v5", 900.0))),
                     (1, "offline", 2000, 2100.0, pytest.approx(normalized("Hopper-v5", 2100.0)))]
    assert external.detect_format(logs / "CQL_hopper-medium-v2_1_20240101" / "environment.csv") == "d3rlpy"


@pytest.mark.parametrize("env, normalized_score", [("Hopper-v5", normalized("Hopper-v5", 1000)),
                                                    ("hopper-medium-v2", None), ("Foo-v0", None)])
def test_returns_of_an_env_without_reference_returns_are_stored_with_a_warning(env, normalized_score, tmp_path,
                                                                               capsys):
    (tmp_path / "r.csv").write_text("method,dataset,seed,step,score\nm,hopper-medium,0,10,1000\n")
    code, _, err = run_cli(["results", "import", str(tmp_path / "r.csv"), "--metric", "return", "--env", env,
                            "--into", str(tmp_path / "bench")], capsys)
    assert code == 0, err
    assert rows(tmp_path / "bench" / "results.sqlite")[0][5:7] == (1000.0, pytest.approx(normalized_score))
    warned = f"warning: env {env!r}: its returns are stored without a normalized score"
    assert err.startswith(warned) and err.count("\n") == 1 if normalized_score is None else err == ""


def test_returns_with_no_env_are_stored_with_the_same_warning(tmp_path, capsys):
    (tmp_path / "r.csv").write_text("method,dataset,seed,step,score\nm,hopper-medium,0,10,1000\n")
    code, _, err = run_cli(["results", "import", str(tmp_path / "r.csv"), "--metric", "return",
                            "--into", str(tmp_path / "bench")], capsys)
    assert code == 0 and err.startswith("warning: no env given: its returns are stored without a normalized score")
