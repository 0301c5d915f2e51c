"""Other code's results as first-class data: the per-seed evaluation curves of another implementation (the authors'
reference code, another library) read into a results database (`o2o results import`), where `o2o report` shows them
as a method of their own, beside o2o's runs, with the same statistics, and marked as imported.

The import format: a CSV file, a header line naming the columns (in any order), then one line per evaluation of a seed:
    method   the method's name in the report, e.g. "ReBRAC (authors' code)" (or --method)
    dataset  named as o2o's runs on it are (e.g. hopper-medium-v2), so that both land in one table row (or --dataset)
    seed     an integer
    step     an integer >= 0 counted as o2o counts: gradient updates offline; environment steps since the switch online
             (online step 0: the offline agent before any online update)
    score    a finite number: what `metric` says
    phase    offline (the default) | online
    metric   normalized (the default; 0 = random, 100 = expert) | success (a rate in %, goal tasks) | return (mean
             episode return; as for o2o's runs, also normalized where o2o has reference returns for `env`, and a
             success rate counts as the normalized score where it has none)
    env      the gymnasium environment id, e.g. Hopper-v5 (optional)
    source   the reference's repository, commit and command (optional; or --source)
`env`, `metric` and `source` are the same on every line of a run (method, dataset, seed); no two lines share method,
dataset, seed, phase and step. JSON holds the same records: a list of objects, or {"records": [...], KEY: VALUE, ...}
whose other keys apply to every record lacking them. d3rlpy's logs are read as written (a `d3rlpy_logs/RUN` directory
or one of its headerless `epoch,step,value` files): `environment.csv` is the offline phase, `evaluation.csv` the
online one, values are returns unless --metric says otherwise, and --method, --dataset, --seed name them.

--method, --dataset, --seed, --phase, --env, --metric and --source give their value to every record of a file
lacking the field, or rename the single value a file holds (several are refused). Errors are one line naming the file, the line or
record and the field; nothing is written unless every file reads cleanly, files are never modified, and the database
is written in one transaction. An imported run replaces the imported run of the same method, dataset and seed, and a
file imported again replaces everything imported from it before. CORL's published pickles are not read: they keep a
run's scores without their steps or seed (write them out as the CSV above with the steps your configs give).
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import hashlib
import io
import json
import math
import warnings
from pathlib import Path
from typing import Any, Iterable

from o2o import files, results
from o2o.envs import normalized_score, reference_returns
from o2o.errors import O2OError

COLUMNS = ("method", "dataset", "seed", "step", "score", "phase", "metric", "env", "source")
PHASES = ("offline", "online")
METRICS = ("normalized", "success", "return")
FORMATS = ("auto", "csv", "json", "d3rlpy")
OPTIONS = ("method", "dataset", "seed", "phase", "env", "metric", "source")  # fields a command-line option can give
RUN_FIELDS = ("env", "metric", "source")  # one value per run
D3RLPY_FILES = {"environment.csv": "offline", "evaluation.csv": "online"}
_KNOWN = ("known columns: " + ", ".join(COLUMNS) + "; `metric` (normalized|success|return) says what score is")


@dataclasses.dataclass
class Record:
    """One evaluation of one seed, as a file gives it; `where` names it in errors (`runs.csv line 4`)."""

    where: str
    values: dict[str, Any]


@dataclasses.dataclass
class ExternalRun:
    """One seed of an imported method on a dataset, with its evaluations {phase: [(step, score)]} in step order."""

    method: str
    dataset: str
    seed: int
    env: str | None
    metric: str
    source: str | None
    file: str  # absolute path of the file (or d3rlpy directory) it was read from
    format: str
    sha256: str
    evaluations: dict[str, list[tuple[int, float]]]

    def row(self) -> dict[str, Any]:
        """The run as `results.import_runs` writes it."""
        return {**{k: getattr(self, k) for k in ("method", "dataset", "seed", "env", "source")},
                "config": {"imported": {k: getattr(self, k) for k in ("file", "format", "sha256", "metric")}},
                "evaluations": {phase: [{"step": step, **scores(score, self.metric, self.env)}
                                        for step, score in points] for phase, points in self.evaluations.items()}}


def scores(score: float, metric: str, env: str | None) -> dict[str, float | None]:
    """An imported score as an evaluation row's columns, filled as o2o fills its own (`o2o.train.evaluation.scores`):
    a return gets its normalized score where the env has reference returns; a success rate is also the normalized
    score where it has none."""
    known = env is not None and reference_returns(env, {}) is not None
    if metric == "normalized":
        return {"return_mean": None, "normalized_score": score, "success_rate": None}
    if metric == "success":
        return {"return_mean": None, "normalized_score": None if known else score, "success_rate": score}
    return {"return_mean": score, "normalized_score": float(normalized_score(env, score, {})) if known else None,
            "success_rate": None}


# ---- reading -----------------------------------------------------------------------------------------------------

def detect_format(path: Path) -> str:
    """d3rlpy for a directory or a headerless .csv whose first line is numbers; json for .json; else csv."""
    if path.is_dir():
        return "d3rlpy"
    if path.suffix.lower() == ".json":
        return "json"
    first = _text(path).lstrip("\ufeff").split("\n", 1)[0].strip()
    return "d3rlpy" if first and (first[0].isdigit() or first[0] in "-+.") else "csv"


def read(path: str | Path, format: str = "auto", **given: Any) -> list[ExternalRun]:
    """The runs one file (or d3rlpy log) holds, with the options in `given` (a key of OPTIONS: its value, or None)
    applied as the module docstring says."""
    path = Path(path)
    if not path.exists():
        raise O2OError(f"{path}: no such file or directory")
    if format not in FORMATS:
        raise O2OError(f"--format {format!r}; choose one of {', '.join(FORMATS)}")
    format = detect_format(path) if format == "auto" else format
    if unknown := set(given) - set(OPTIONS):
        raise TypeError(f"unknown options {sorted(unknown)}")
    given = {k: v for k, v in given.items() if v is not None}
    if format == "d3rlpy":
        records, digest, defaults = _read_d3rlpy(path)
    else:
        data = _bytes(path)
        records = _read_csv(path, data, given) if format == "csv" else _read_json(path, data)
        digest, defaults = hashlib.sha256(data).hexdigest(), {"phase": "offline", "metric": "normalized"}
    if not records:
        raise O2OError(f"{path}: holds no evaluation")
    for record in records:
        _check(record)
    _apply(path, records, given, format)
    for record in records:
        record.values = {**defaults, **record.values}
    return _runs(path, records, format, digest)


def _bytes(path: Path) -> bytes:
    if path.is_dir():
        raise O2OError(f"{path}: a directory; a CSV or JSON file is expected (--format d3rlpy reads d3rlpy's logs)")
    try:
        return path.read_bytes()
    except OSError as e:
        raise O2OError(f"{path}: cannot be read ({e.strerror})") from None


def _text(path: Path, data: bytes | None = None) -> str:
    try:
        return (_bytes(path) if data is None else data).decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise O2OError(f"{path}: not UTF-8 text (byte {e.start}); expected a CSV or JSON file") from None


def _read_csv(path: Path, data: bytes, given: dict[str, Any]) -> list[Record]:
    reader = csv.reader(io.StringIO(_text(path, data), newline=""))
    try:
        header = next((row for row in reader if row), None)
        if header is None:
            raise O2OError(f"{path}: empty; expected a header line such as method,dataset,seed,step,score")
        header = [name.strip() for name in header]
        for name in header:
            if name not in COLUMNS:
                raise O2OError(f"{path} line {reader.line_num}: unknown column {name!r} ({_KNOWN})")
            if header.count(name) > 1:
                raise O2OError(f"{path} line {reader.line_num}: column {name!r} appears twice")
        for name in ("method", "dataset", "seed", "step", "score"):
            if name not in header and not (name in OPTIONS and name in given):
                hint = f" and no --{name}" if name in OPTIONS else ""
                raise O2OError(f"{path}: no column {name!r}{hint} (its columns: {', '.join(header)}); every file needs "
                               "seed, step and score, and method and dataset unless --method and --dataset give them")
        records = []
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue  # a blank line
            where = f"{path} line {reader.line_num}"
            if len(row) != len(header):
                raise O2OError(f"{where}: {len(row)} fields where the header names {len(header)} ({','.join(header)})")
            records.append(Record(where, {k: v.strip() for k, v in zip(header, row) if v.strip() != ""}))
    except csv.Error as e:
        raise O2OError(f"{path} line {reader.line_num}: not CSV ({e})") from None
    return records


def _read_json(path: Path, data: bytes) -> list[Record]:
    try:
        payload = json.loads(_text(path, data))
    except json.JSONDecodeError as e:
        raise O2OError(f"{path}: not valid JSON ({e.msg} at line {e.lineno} column {e.colno})") from None
    shared, name = {}, "item"
    if isinstance(payload, dict):
        if not isinstance(payload.get("records"), list):
            raise O2OError(f'{path}: a JSON object needs "records", a list of records (or give the list alone)')
        shared = {k: v for k, v in payload.items() if k != "records"}
        for key in shared:
            if key not in COLUMNS:
                raise O2OError(f"{path}: unknown key {key!r} beside \"records\" ({_KNOWN})")
        payload, name = payload["records"], "records"
    elif not isinstance(payload, list):
        raise O2OError(f"{path}: expected a list of records or an object with \"records\"")
    records = []
    for i, item in enumerate(payload):
        where = f"{path} {name}[{i}]"
        if not isinstance(item, dict):
            raise O2OError(f"{where}: a record is an object such as {{\"seed\": 0, \"step\": 1000, \"score\": 42.0}}")
        for key in item:
            if key not in COLUMNS:
                raise O2OError(f"{where}: unknown field {key!r} ({_KNOWN})")
        values = {**shared, **item}
        records.append(Record(where, {k: v for k, v in values.items() if v is not None and v != ""}))
    return records


def _read_d3rlpy(path: Path) -> tuple[list[Record], str, dict[str, str]]:
    found = [path / name for name in D3RLPY_FILES if (path / name).is_file()] if path.is_dir() else [path]
    if not found:
        raise O2OError(f"{path}: no environment.csv (offline evaluations) or evaluation.csv (online) in this "
                       "d3rlpy log; d3rlpy writes them for fit(..., evaluators={'environment': ...}) and "
                       "fit_online(..., eval_env=...)")
    digest, records = hashlib.sha256(), []
    for metric_file in found:
        data = _bytes(metric_file)
        digest.update(data)
        phase = D3RLPY_FILES.get(metric_file.name, "offline")
        for number, line in enumerate(_text(metric_file, data).splitlines(), 1):
            if not line.strip():
                continue
            where = f"{metric_file} line {number}"
            fields = line.split(",")
            if len(fields) != 3:
                raise O2OError(f"{where}: {len(fields)} fields; d3rlpy writes epoch,step,value")
            records.append(Record(where, {"step": fields[1].strip(), "score": fields[2].strip(), "phase": phase}))
    return records, digest.hexdigest(), {"metric": "return"}


# ---- checking ----------------------------------------------------------------------------------------------------

def _check(record: Record) -> None:
    """Each field of a record as its type, or a one-line error naming the record and the field."""
    values, where = record.values, record.where
    for field in ("seed", "step"):
        if field in values:
            values[field] = _integer(values[field], where, field)
    if values.get("step", 0) < 0:
        raise O2OError(f"{where}: step {values['step']} is negative; steps count from 0")
    if "score" in values:
        values["score"] = _number(values["score"], where)
    for field in ("method", "dataset", "env", "source"):
        if field in values:
            if not isinstance(values[field], str):
                raise O2OError(f"{where}: {field} {values[field]!r} is not text")
            values[field] = values[field].strip()
    for field, allowed in (("phase", PHASES), ("metric", METRICS)):
        if field in values and values[field] not in allowed:
            raise O2OError(f"{where}: {field} {values[field]!r}; expected {' or '.join(allowed)}")


def _integer(value: Any, where: str, field: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    try:
        number = float(value) if isinstance(value, (str, float)) else math.nan
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or not number.is_integer():
        raise O2OError(f"{where}: {field} {value!r} is not an integer")
    return int(number)


def _number(value: Any, where: str) -> float:
    try:
        number = float(value) if isinstance(value, (str, int, float)) and not isinstance(value, bool) else None
    except ValueError:
        number = None
    if number is None:
        raise O2OError(f"{where}: score {value!r} is not a number")
    if not math.isfinite(number):
        raise O2OError(f"{where}: score is {value}; every score must be finite")
    return number


def _apply(path: Path, records: list[Record], given: dict[str, Any], format: str) -> None:
    """The command-line options: each names the field where the file lacks it, or renames the one value it holds;
    then every record has what a run needs."""
    for field, value in given.items():
        for name, allowed in (("metric", METRICS), ("phase", PHASES)):
            if field == name and value not in allowed:
                raise O2OError(f"--{name} {value!r}; expected {' or '.join(allowed)}")
        held = list(dict.fromkeys(r.values[field] for r in records if field in r.values))
        if len(held) > 1:
            shown = ", ".join(map(str, held[:4])) + (", ..." if len(held) > 4 else "")
            raise O2OError(f"{path}: holds {len(held)} values of {field} ({shown}); --{field} names or renames the "
                           f"{field} of a file holding one")
        for r in records:
            r.values[field] = value
    for field in ("method", "dataset", "seed", "step", "score"):
        missing = next((r for r in records if field not in r.values), None)
        if missing is not None:  # step, score: an empty cell or a JSON null (the column is there, its value not)
            carried = "a d3rlpy log names none" if format == "d3rlpy" else f"{missing.where} has none"
            raise O2OError(f"{path}: no {field} ({carried}); give --{field}" if field in OPTIONS
                           else f"{missing.where}: no {field}; every evaluation has a step and a score")


def _runs(path: Path, records: list[Record], format: str, digest: str) -> list[ExternalRun]:
    by_run: dict[tuple[str, str, int], list[Record]] = {}
    for r in records:
        by_run.setdefault((r.values["method"], r.values["dataset"], r.values["seed"]), []).append(r)
    runs = []
    for (method, dataset, seed), group in by_run.items():
        first = group[0]
        for r in group[1:]:
            for field in RUN_FIELDS:
                if r.values.get(field) != first.values.get(field):
                    raise O2OError(f"{r.where}: {field} {r.values.get(field)!r} differs from {first.where}'s "
                                   f"{first.values.get(field)!r} in the same run (method {method!r}, dataset "
                                   f"{dataset!r}, seed {seed}); one run has one {field}")
        seen: dict[tuple[str, int], str] = {}
        evaluations: dict[str, list[tuple[int, float]]] = {}
        for r in group:
            point = (r.values["phase"], r.values["step"])
            if point in seen:
                raise O2OError(f"{r.where}: repeats {seen[point]}: method {method!r}, dataset {dataset!r}, seed "
                               f"{seed}, {point[0]} step {point[1]}; one score per step")
            seen[point] = r.where
            if r.values["metric"] == "success" and not 0 <= r.values["score"] <= 100:
                raise O2OError(f"{r.where}: success rate {r.values['score']:g} is outside 0-100; metric success is "
                               "a rate in %")
            evaluations.setdefault(point[0], []).append((point[1], r.values["score"]))
        values = first.values
        runs.append(ExternalRun(method=method, dataset=dataset, seed=seed, env=values.get("env"),
                                metric=values["metric"], source=values.get("source"), file=str(path.resolve()),
                                format=format, sha256=digest,
                                evaluations={phase: sorted(evaluations[phase]) for phase in PHASES
                                             if phase in evaluations}))
    return runs


# ---- into a database ---------------------------------------------------------------------------------------------

def database_path(into: str | Path) -> Path:
    """`--into`: a bench directory (its results.sqlite; made if missing) or a results database file (.sqlite)."""
    path = Path(into)
    if path.is_dir():
        return path / "results.sqlite"
    if path.suffix.lower() in (".sqlite", ".sqlite3", ".db"):
        return path
    if path.exists():
        raise O2OError(f"{into}: --into is a bench directory or a results database (.sqlite file)")
    return path / "results.sqlite"


def import_files(paths: Iterable[str | Path], into: str | Path, format: str = "auto", seeds: list[int] | None = None,
                 **given: Any) -> dict[str, Any]:
    """Read every file (one --seed per file where `seeds` is given), then write their runs into the database in one
    transaction. Returns {database, runs, evaluations, replaced, replaced_from, imported: [{file, format, method,
    dataset, seeds, evaluations}]}."""
    paths = [Path(p) for p in paths]
    if not paths:
        raise O2OError("o2o results import needs at least one FILE")
    twice = [p for i, p in enumerate(paths) if p.resolve() in {q.resolve() for q in paths[:i]}]
    if twice:  # its runs would be counted twice in the summary
        raise O2OError(f"{twice[0]}: given twice; name each FILE once")
    if seeds and len(seeds) != len(paths):
        raise O2OError(f"--seed: give one per FILE, in order ({len(paths)} FILE(s), {len(seeds)} --seed)")
    runs: list[ExternalRun] = []
    origin: dict[tuple[str, str, int], str] = {}
    for i, path in enumerate(paths):
        for run in read(path, format, seed=seeds[i] if seeds else None, **given):
            key = (run.method, run.dataset, run.seed)
            if key in origin and origin[key] != run.file:
                raise O2OError(f"{path}: method {run.method!r}, dataset {run.dataset!r}, seed {run.seed} is also in "
                               f"{origin[key]}; import one run once")
            origin[key] = run.file
            runs.append(run)
    # stored without a normalized score (`scores`), likely by a mistyped env or a D4RL dataset name given as the env
    for env in sorted({r.env or "" for r in runs if r.metric == "return" and reference_returns(r.env) is None}):
        warnings.warn(f"{f'env {env!r}' if env else 'no env given'}: its returns are stored without a normalized score "
                      "(o2o has reference returns for gymnasium ids such as Hopper-v5 and Pendulum-v1; --env ENV)")
    database = database_path(into)
    files.check_destination(database.parent, may_exist=True, name="--into")  # writable, or made so
    existed = database.exists()
    try:
        with contextlib.closing(results.connect(database)) as conn:
            written = results.import_runs(conn, [run.row() for run in runs])
    except BaseException:
        if not existed:
            database.unlink(missing_ok=True)  # a database this command made holds nothing of anyone's
        raise
    imported: dict[tuple[str, str, str], dict[str, Any]] = {}
    for run in runs:
        entry = imported.setdefault((run.file, run.method, run.dataset), {
            "file": run.file, "format": run.format, "method": run.method, "dataset": run.dataset, "seeds": [],
            "evaluations": 0})
        entry["seeds"].append(run.seed)
        entry["evaluations"] += sum(map(len, run.evaluations.values()))
    return {"database": str(database), **written, "imported": list(imported.values())}
