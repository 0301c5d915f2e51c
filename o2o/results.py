"""The results database: one SQLite file (`results.sqlite`) holding bench cells, runs (one row per trained seed, its
offline and online phases together) and every evaluation with each episode's return.

Run directories stay the source of truth; `ingest_run` reads them (through `o2o.train.runs.RunDir`), and
re-ingesting a run replaces its rows, so the database can always be rebuilt from the directories.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from o2o.errors import O2OError
from o2o.train.runs import RunDir

SCHEMA = """
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
    key TEXT NOT NULL UNIQUE,       -- offline dir | online dir | seed
    cell TEXT,                      -- NULL for run directories ingested by `o2o report`
    algo TEXT NOT NULL,             -- the offline algorithm (or the online one for runs from scratch)
    online_algo TEXT,
    dataset TEXT NOT NULL,
    dataset_source TEXT,
    env TEXT,
    level TEXT,                     -- the dataset's D4RL-protocol level when o2o collected it
    seed INTEGER NOT NULL,
    offline_dir TEXT,
    online_dir TEXT,
    offline_steps INTEGER,
    online_steps INTEGER,
    config TEXT NOT NULL,           -- JSON: the resolved config.json of each phase
    status TEXT NOT NULL,           -- completed | failed | incomplete
    error TEXT,
    wall_seconds REAL,
    cumulative_regret REAL,         -- online phase of goal tasks (over all seeds of the run directory)
    versions TEXT                   -- JSON
);
CREATE TABLE IF NOT EXISTS evaluations (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    phase TEXT NOT NULL,            -- offline | online
    step INTEGER NOT NULL,          -- updates (offline) or env steps (online)
    return_mean REAL NOT NULL,
    normalized_score REAL,
    success_rate REAL,              -- % of episodes, where the env reports success
    episode_returns TEXT,           -- JSON list, every evaluation episode
    episode_successes TEXT,         -- JSON list or NULL
    PRIMARY KEY (run_id, phase, step)
);
"""


def connect(path: str | Path) -> sqlite3.Connection:
    """Open (creating if needed) a results database."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        conn = sqlite3.connect(path, timeout=60)
        conn.execute("PRAGMA foreign_keys = ON")
        conn.executescript(SCHEMA)
    except sqlite3.DatabaseError as e:
        raise O2OError(f"{path}: not a usable results database ({e})") from e
    conn.row_factory = sqlite3.Row
    return conn


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
    """(offline dir, online dir) of any run directory: an online run fine-tuned from an offline one names both."""
    run = RunDir.open(run_dir)
    if run.kind == "offline":
        return run.path, None
    if run.kind == "online":
        init_from = run.settings.get("init_from")
        return (Path(init_from) if init_from else None), run.path
    raise O2OError(f"{run.path}: config.json kind {run.kind!r} is neither offline nor online")


def ingest_run(conn: sqlite3.Connection, offline_dir: Path | None, online_dir: Path | None, cell: str | None = None,
               status: str | None = None, error: str | None = None, label: str | None = None) -> list[int]:
    """Write one row per seed of a run (its offline and/or online directory) with all its evaluations; returns the ids."""
    phases = {name: RunDir.open(d) for name, d in (("offline", offline_dir), ("online", online_dir)) if d is not None}
    configs = {name: run.record for name, run in phases.items()}
    summaries = {name: run.summary for name, run in phases.items()}
    first = configs.get("offline") or configs["online"]
    settings = first["settings"]
    metadata = (configs.get("offline") or {}).get("dataset_metadata") or {}
    source = settings.get("dataset") or settings.get("offline_dataset")
    online_settings = configs["online"]["settings"] if "online" in configs else None
    algo = settings["algo"]
    if status is None:
        status = "completed" if all(summaries.values()) else "incomplete"
    wall = sum((s or {}).get("total_wall_seconds", (s or {}).get("wall_seconds", 0.0)) for s in summaries.values())
    evaluations = {name: run.evaluations() for name, run in phases.items()}
    ids = []
    for index, seed in enumerate(first["seeds"]):
        key = f"{offline_dir or ''}|{online_dir or ''}|{seed}"
        conn.execute("DELETE FROM runs WHERE key = ?", (key,))
        cursor = conn.execute(
            "INSERT INTO runs (key, cell, algo, online_algo, dataset, dataset_source, env, level, seed, offline_dir,"
            " online_dir, offline_steps, online_steps, config, status, error, wall_seconds, cumulative_regret, versions)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (key, cell, algo, online_settings["algo"] if online_settings and offline_dir else None,
             label or (Path(source).name if source else "online"), source, first.get("env_id"),
             metadata.get("level"), seed, str(offline_dir) if offline_dir else None,
             str(online_dir) if online_dir else None,
             configs["offline"]["settings"]["steps"] if "offline" in configs else None,
             online_settings["steps"] if online_settings else None,
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
