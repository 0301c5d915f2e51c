"""The results database: one SQLite file (`results.sqlite`) holding bench cells, runs (one row per trained seed, its
offline and online phases together) and every evaluation with each episode's return.

Run directories stay the source of truth for o2o's own runs (`runs.origin = 'o2o'`); `ingest_run` reads them
(through `o2o.train.runs.RunDir`), and re-ingesting a run replaces its rows, so those rows can always be rebuilt from
the directories. Runs of other code (`runs.origin = 'imported'`, `o2o results import`, `o2o.external`) have no
directory: their rows are the only copy of what the imported file held, and `import_runs` replaces them as a whole.

Schema versions (`PRAGMA user_version`), each database brought up to date when `connect` opens it:
- 0: cells, runs, evaluations;
- 1: `runs.origin` (o2o | imported) and `runs.source` (where an imported run comes from), and
  `evaluations.return_mean` may be NULL (an imported normalized score or success rate comes without its return).
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from o2o.errors import O2OError
from o2o.train.runs import RunDir

EVALUATIONS = """evaluations (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    phase TEXT NOT NULL,            -- offline | online
    step INTEGER NOT NULL,          -- updates (offline) or env steps (online)
    return_mean REAL,               -- NULL only for imported scores that come without their return
    normalized_score REAL,
    success_rate REAL,              -- % of episodes, where the env reports success
    episode_returns TEXT,           -- JSON list, every evaluation episode
    episode_successes TEXT,         -- JSON list or NULL
    PRIMARY KEY (run_id, phase, step)
)"""
SCHEMA = f"""
CREATE TABLE IF NOT EXISTS cells (
    cell TEXT PRIMARY KEY,          -- stable id: algorithm, dataset, online algorithm, seed group
    algo TEXT NOT NULL,
    dataset TEXT NOT NULL,          -- the dataset's label (its directory name)
    online_algo TEXT,               -- NULL: offline only
    seeds TEXT NOT NULL,            -- JSON list
    status TEXT NOT NULL,           -- pending | running | completed | failed
    error TEXT,                     -- one line, for failed cells
    wall_seconds REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    updated TEXT
);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,       -- offline dir | online dir | seed; imported: imported | method | dataset | seed
    cell TEXT,                      -- NULL for run directories ingested by `o2o report`
    algo TEXT NOT NULL,             -- the offline algorithm (the online one for runs from scratch); imported: the method
    online_algo TEXT,               -- imported: the method, where the run has both phases
    dataset TEXT NOT NULL,
    dataset_source TEXT,
    env TEXT,
    level TEXT,                     -- the dataset's D4RL-protocol level when o2o collected it
    seed INTEGER NOT NULL,
    offline_dir TEXT,
    online_dir TEXT,
    offline_steps INTEGER,
    online_steps INTEGER,
    config TEXT NOT NULL,           -- JSON: the resolved config.json of each phase; imported: the file read
    status TEXT NOT NULL,           -- completed | failed | incomplete
    error TEXT,
    wall_seconds REAL,
    cumulative_regret REAL,         -- online phase of goal tasks (over all seeds of the run directory)
    versions TEXT,                  -- JSON
    origin TEXT NOT NULL DEFAULT 'o2o',  -- o2o: trained by o2o | imported: other code's curve (`o2o results import`)
    source TEXT                     -- imported: where it comes from (the reference's repository and commit)
);
CREATE TABLE IF NOT EXISTS {EVALUATIONS};
"""


SCHEMA_VERSION = 1


def connect(path: str | Path) -> sqlite3.Connection:
    """Open (creating if needed) a results database, migrating one written by an earlier o2o to `SCHEMA_VERSION`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        conn = sqlite3.connect(path, timeout=60)
        conn.execute("PRAGMA foreign_keys = ON")
        conn.executescript(SCHEMA)
        _migrate(conn)
    except sqlite3.OperationalError as e:
        if "readonly" not in str(e):
            raise O2OError(f"{path}: not a usable results database ({e})") from e
        raise O2OError(f"{path}: written by an earlier o2o and read-only here; o2o updates the schema of such a "
                       "database once (its rows stay): make it writable, or copy it") from e
    except sqlite3.DatabaseError as e:
        raise O2OError(f"{path}: not a usable results database ({e})") from e
    conn.row_factory = sqlite3.Row
    return conn


def _migrate(conn: sqlite3.Connection) -> None:
    """Bring a database of an earlier schema version up to `SCHEMA_VERSION`, in one transaction: its rows stay, o2o's
    runs get origin 'o2o'."""
    if conn.execute("PRAGMA user_version").fetchone()[0] >= SCHEMA_VERSION:
        return
    conn.execute("BEGIN IMMEDIATE")  # another process may be migrating the same file: wait for it, then look again
    try:
        if conn.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
            columns = {row[1] for row in conn.execute("PRAGMA table_info(runs)")}
            if "origin" not in columns:
                conn.execute("ALTER TABLE runs ADD COLUMN origin TEXT NOT NULL DEFAULT 'o2o'")
            if "source" not in columns:
                conn.execute("ALTER TABLE runs ADD COLUMN source TEXT")
            not_null = {row[1]: row[3] for row in conn.execute("PRAGMA table_info(evaluations)")}
            if not_null.get("return_mean"):  # SQLite cannot drop a constraint: copy the table into the new schema
                conn.execute("ALTER TABLE evaluations RENAME TO evaluations_v0")
                conn.execute(f"CREATE TABLE {EVALUATIONS}")
                conn.execute("INSERT INTO evaluations SELECT * FROM evaluations_v0")
                conn.execute("DROP TABLE evaluations_v0")
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.commit()
    except BaseException:
        conn.rollback()
        raise


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def set_cell(conn: sqlite3.Connection, cell: str, **values: Any) -> None:
    """Insert or update a cell's row (JSON-encoding lists)."""
    values = {k: json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in values.items()}
    values["updated"] = now()
    existing = conn.execute("SELECT 1 FROM cells WHERE cell = ?", (cell,)).fetchone()
    if existing:
        conn.execute(f"UPDATE cells SET {', '.join(f'{k} = ?' for k in values)} WHERE cell = ?", (*values.values(), cell))
    else:
        conn.execute(f"INSERT INTO cells (cell, {', '.join(values)}) VALUES (?{', ?' * len(values)})",
                     (cell, *values.values()))
    conn.commit()


def cell_status(conn: sqlite3.Connection) -> dict[str, str]:
    return {row["cell"]: row["status"] for row in conn.execute("SELECT cell, status FROM cells")}


def describe_run_dir(run_dir: str | Path) -> tuple[Path | None, Path | None]:
    """(offline dir, online dir) of any run directory, both absolute: an online run fine-tuned from an offline one
    names both (`offline_run_of`)."""
    run = RunDir.open(run_dir)
    if run.kind == "offline":
        return run.path.resolve(), None
    if run.kind == "online":
        return offline_run_of(run), run.path.resolve()
    raise O2OError(f"{run.path}: config.json kind {run.kind!r} is neither offline nor online")


def offline_run_of(online: RunDir) -> Path | None:
    """The offline run an online run was fine-tuned from (None for a run from scratch). Runs record `init_from` as
    typed (absolute since 2026-12-07), so a relative one is looked for where it was typed: the directory the recorded
    `out` was relative to, then the run's parent, then here (an absolute one also beside the run: runs moved together);
    the first that holds a run must be the one the online run recorded (`check_pairing`), not merely a namesake."""
    init_from = online.settings.get("init_from")
    if not init_from:
        return None
    path, here = Path(init_from), online.path.resolve()
    bases = [here.parent, Path.cwd()]
    out = Path(online.settings.get("out") or "")
    if out.parts and not out.is_absolute() and here.parts[-len(out.parts):] == out.parts:
        bases.insert(0, here.parents[len(out.parts) - 1])  # the run's path less its typed `out`: where it was typed
    candidates = [path, here.parent / path.name] if path.is_absolute() else [base / path for base in bases]
    found = next((c for c in candidates if RunDir.exists(c)), None)
    if found is None:
        raise O2OError(f"{online.path}: fine-tuned from {init_from}, which holds no run directory any more (looked in "
                       f"{', '.join(str(c) for c in dict.fromkeys(candidates))})")
    check_pairing(RunDir.open(found), online)
    return found.resolve()


PAIRED_SETTINGS = ("algo", "dataset", "steps", "seed", "seeds")  # an online run's `offline_data` records them


def check_pairing(offline: RunDir, online: RunDir) -> None:
    """Refuse an offline run that is not the one `online` was fine-tuned from: seeds, env, the data's content hash and
    the offline settings the online run recorded must all agree (what a run does not record is not compared)."""
    recorded = online.record.get("offline_data") or {}
    hashes = [(run.record.get("dataset") or {}).get("content_hash") for run in (offline, online)]
    pairs = [("seeds", offline.seeds, online.seeds), ("env", offline.env_id, online.env_id),
             ("dataset content hash", *hashes),
             *((key, offline.settings.get(key), recorded.get(key)) for key in PAIRED_SETTINGS)]
    extended_from = [e["from_steps"] for e in offline.record.get("extensions", [])]
    for name, theirs, ours in pairs:
        if name == "steps" and ours in extended_from:  # extended since the hand-off: `ingest_run` cuts its curve there
            continue
        if theirs is not None and ours is not None and theirs != ours:
            raise O2OError(f"{online.path}: fine-tuned from {online.settings.get('init_from')}, but {offline.path} is "
                           f"not that run as it was then ({name} {theirs!r} there, {ours!r} recorded by the fine-tuned "
                           "run); report the fine-tuned run from the directory it was made in")


def dataset_label(source: str | None, env: str | None = None, is_id: bool = False) -> str:
    """How results name a run's data: a file or directory by its name; a dataset id (Minari's
    `mujoco/hopper/medium-v0`) in full with '/' made '-', since ids of different envs share their last part; and
    `online:ENV` for an online run without data."""
    if not source:
        return f"online:{env}" if env else "online"
    return source.replace("/", "-") if is_id else Path(source).name


def finished(run: RunDir) -> bool:
    """A phase is finished when its summary is for the steps its settings ask: a run being extended (`--resume --steps
    N`), or killed while it was, keeps the summary of its earlier budget (summaries without steps: finished)."""
    summary = run.summary
    return summary is not None and summary.get("steps", run.settings["steps"]) == run.settings["steps"]


def online_method(algo: str, bonus: str = "none") -> str:
    """How results name an online phase: its algorithm, with its reward bonus where it had one (`calql+sera`)."""
    return algo if bonus == "none" else f"{algo}+{bonus}"


def ingest_run(conn: sqlite3.Connection, offline_dir: Path | None, online_dir: Path | None, cell: str | None = None,
               status: str | None = None, error: str | None = None, label: str | None = None) -> list[int]:
    """Write one row per seed of a run (its offline and/or online directory) with all its evaluations; returns the ids."""
    phases = {name: RunDir.open(d) for name, d in (("offline", offline_dir), ("online", online_dir)) if d is not None}
    if len(phases) == 2:
        check_pairing(phases["offline"], phases["online"])
    configs = {name: run.record for name, run in phases.items()}
    summaries = {name: run.summary for name, run in phases.items()}
    first = configs.get("offline") or configs["online"]
    settings = first["settings"]
    metadata = (configs.get("offline") or {}).get("dataset_metadata") or {}
    source = settings.get("dataset") or settings.get("offline_dataset")
    # a Minari dataset named by its id (not a path): the id is its name
    is_id = (bool(source) and (first.get("dataset_metadata") or {}).get("source_format") == "minari"
             and not Path(source).is_absolute())
    online_settings = configs["online"]["settings"] if "online" in configs else None
    algo = settings["algo"]
    if status != "failed":  # a failure is what the bench saw; whether a run finished, its directories say
        status = "completed" if all(finished(run) for run in phases.values()) else "incomplete"
    wall = sum((s or {}).get("total_wall_seconds", (s or {}).get("wall_seconds", 0.0)) for s in summaries.values())
    evaluations = {name: run.evaluations() for name, run in phases.items()}
    offline_steps = configs["offline"]["settings"]["steps"] if "offline" in configs else None
    if len(phases) == 2:  # an offline run extended after the hand-off is reported as it was fine-tuned from
        offline_steps = (configs["online"].get("offline_data") or {}).get("steps", offline_steps)
        evaluations["offline"] = [r for r in evaluations["offline"] if r["step"] <= offline_steps]
    ids = []
    for index, seed in enumerate(first["seeds"]):
        key = f"{offline_dir or ''}|{online_dir or ''}|{seed}"
        conn.execute("DELETE FROM runs WHERE key = ?", (key,))
        cursor = conn.execute(
            "INSERT INTO runs (key, cell, algo, online_algo, dataset, dataset_source, env, level, seed, offline_dir,"
            " online_dir, offline_steps, online_steps, config, status, error, wall_seconds, cumulative_regret, versions)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (key, cell, algo, online_method(online_settings["algo"], online_settings.get("reward_bonus", "none"))
             if online_settings and offline_dir else None,
             label or dataset_label(source, first.get("env_id"), is_id), source, first.get("env_id"),
             metadata.get("level"), seed, str(offline_dir) if offline_dir else None,
             str(online_dir) if online_dir else None,
             offline_steps, online_settings["steps"] if online_settings else None,
             json.dumps(configs), status, error, wall or None,
             (summaries.get("online") or {}).get("cumulative_regret"), json.dumps(first.get("versions"))))
        run_id = cursor.lastrowid
        ids.append(run_id)
        for phase, records in evaluations.items():
            conn.executemany(
                "INSERT OR REPLACE INTO evaluations VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(run_id, phase, r["step"], r["return_per_seed"][index], _at(r, "normalized_score_per_seed", index),
                  _at(r, "success_rate_per_seed", index), _json_at(r, "episode_returns", index),
                  _json_at(r, "episode_successes", index)) for r in records])
    conn.commit()
    return ids


def ingest_run_dirs(conn: sqlite3.Connection, run_dirs: Iterable[str | Path]) -> int:
    """Ingest plain run directories (offline runs, online runs, fine-tuned runs with their offline run); an offline run
    that a given fine-tuned run starts from is ingested once, as part of that run. Returns the number of run rows."""
    pairs = [describe_run_dir(d) for d in run_dirs]
    covered = {off.resolve() for off, on in pairs if off is not None and on is not None}
    count = 0
    for offline_dir, online_dir in pairs:
        if online_dir is None and offline_dir.resolve() in covered:
            continue
        count += len(ingest_run(conn, offline_dir, online_dir))
    return count


def _at(record: dict, key: str, index: int) -> float | None:
    values = record.get(key)
    return None if values is None else float(values[index])


def _json_at(record: dict, key: str, index: int) -> str | None:
    values = record.get(key)
    return None if values is None else json.dumps(values[index])


def load(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Every run with its evaluations grouped by phase: [{...run columns, "evaluations": {phase: [rows]}}]."""
    runs = {row["id"]: {**dict(row), "evaluations": {}} for row in conn.execute("SELECT * FROM runs ORDER BY id")}
    for row in conn.execute("SELECT * FROM evaluations ORDER BY run_id, phase, step"):
        evaluation = dict(row)
        for key in ("episode_returns", "episode_successes"):
            evaluation[key] = json.loads(evaluation[key]) if evaluation[key] else None
        runs[row["run_id"]]["evaluations"].setdefault(row["phase"], []).append(evaluation)
    return list(runs.values())


IMPORTED = "imported"  # runs.origin of another code's runs


def import_runs(conn: sqlite3.Connection, runs: list[dict[str, Any]], replace_files: bool = True) -> dict[str, Any]:
    """Write imported runs in one transaction (an error leaves the database as it was). Each run is a dict with
    method, dataset, seed, env, source, config (JSON-able, with `imported.file`) and evaluations {phase: [rows with
    step, return_mean, normalized_score, success_rate]}. A run replaces the imported run of the same method, dataset
    and seed, and (`replace_files`) importing a file again first removes every run imported from it before, so a
    re-import is exact. Returns {runs, evaluations, replaced, replaced_from}."""
    imported_files = {run["config"]["imported"]["file"] for run in runs}
    earlier = {row["id"]: (row["key"], json.loads(row["config"]).get("imported", {}).get("file"))
               for row in conn.execute("SELECT id, key, config FROM runs WHERE origin = ?", (IMPORTED,))}
    keys = {_imported_key(run): run for run in runs}
    gone = {i: file for i, (key, file) in earlier.items() if (replace_files and file in imported_files) or key in keys}
    evaluations = 0
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.executemany("DELETE FROM runs WHERE id = ?", [(i,) for i in gone])
        for key, run in keys.items():
            phases = run["evaluations"]
            both = all(phases.get(phase) for phase in ("offline", "online"))
            cursor = conn.execute(
                "INSERT INTO runs (key, cell, algo, online_algo, dataset, env, seed, offline_steps, online_steps,"
                " config, status, origin, source) VALUES (?, NULL, ?, ?, ?, ?, ?, ?, ?, ?, 'completed', ?, ?)",
                (key, run["method"], run["method"] if both else None, run["dataset"], run.get("env"), run["seed"],
                 _last_step(phases.get("offline")), _last_step(phases.get("online")), json.dumps(run["config"]),
                 IMPORTED, run.get("source")))
            rows = [(cursor.lastrowid, phase, e["step"], e.get("return_mean"), e.get("normalized_score"),
                     e.get("success_rate"), None, None) for phase, points in phases.items() for e in points]
            conn.executemany("INSERT INTO evaluations VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
            evaluations += len(rows)
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    return {"runs": len(keys), "evaluations": evaluations, "replaced": len(gone),
            "replaced_from": sorted({file for file in gone.values() if file})}


def _imported_key(run: dict[str, Any]) -> str:
    return f"{IMPORTED}|{run['method']}|{run['dataset']}|{run['seed']}"


def _last_step(points: list[dict[str, Any]] | None) -> int | None:
    return max(e["step"] for e in points) if points else None


def copy_stored_run(source: sqlite3.Connection, conn: sqlite3.Connection, offline_dir: str | None,
                    online_dir: str | None, cell: str | None) -> int:
    """Copy o2o's rows of one run (every seed, with its evaluations) as `source` stores them, filed under `cell`,
    replacing rows of the same key: for a run whose directories are gone, the database is the only record left.
    Returns how many seeds."""
    stored = source.execute("SELECT * FROM runs WHERE origin = 'o2o' AND offline_dir IS ? AND online_dir IS ?",
                            (offline_dir, online_dir)).fetchall()
    for row in stored:
        columns = [name for name in row.keys() if name != "id"]
        conn.execute("DELETE FROM runs WHERE key = ?", (row["key"],))
        cursor = conn.execute(f"INSERT INTO runs ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                              [cell if name == "cell" else row[name] for name in columns])
        for evaluation in source.execute("SELECT * FROM evaluations WHERE run_id = ?", (row["id"],)):
            names = evaluation.keys()
            conn.execute(f"INSERT INTO evaluations ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
                         [cursor.lastrowid if name == "run_id" else evaluation[name] for name in names])
    conn.commit()
    return len(stored)


def copy_imported(source: sqlite3.Connection, conn: sqlite3.Connection) -> int:
    """Copy the imported runs of one database into another (they have no run directory to ingest again); returns
    how many."""
    runs = []
    for run in load(source):
        if run["origin"] == IMPORTED:
            runs.append({"method": run["algo"], "dataset": run["dataset"], "seed": run["seed"], "env": run["env"],
                         "source": run["source"], "config": json.loads(run["config"]),
                         "evaluations": run["evaluations"]})
    if runs:
        import_runs(conn, runs, replace_files=False)
    return len(runs)
