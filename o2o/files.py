"""Files written so that nothing is lost, and read with a clear error: destinations checked before any work,
atomic replacement (a reader sees the old file or the whole new one, never a part) and one JSON encoder for NumPy
values, dataclasses and paths."""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

from o2o.errors import O2OError


_PROBE_BYTES = 4096  # one filesystem block: a full disk refuses it at write(), an empty file would still be created


def check_destination(path: str | os.PathLike, *, may_exist: bool = False, name: str = "--out") -> Path:
    """Refuse, before any work, a destination that cannot be written: one that exists (unless `may_exist`, for a
    command that resumes or updates into it), or whose nearest existing ancestor is not a directory where a file can
    be written. That is tried by writing a block to a hidden file there, removed at once: unlike permission bits, it
    also catches root on a read-only mount and a full disk. `name` is what the user changes, shown in the error."""
    path = Path(path)
    if not may_exist and (path.exists() or path.is_symlink()):
        raise O2OError(f"{path}: already exists; choose another {name} or remove it first")
    ancestor = next(p for p in (path, *path.parents) if p.exists())
    if not ancestor.is_dir():
        raise O2OError(f"{path}: cannot be created, {ancestor} is not a directory; choose another {name}")
    try:
        with tempfile.TemporaryFile(dir=ancestor) as probe:
            probe.write(bytes(_PROBE_BYTES))
            probe.flush()
    except OSError as e:
        raise O2OError(f"{path}: cannot be written ({ancestor}: {e.strerror}); choose another {name}") from None
    return path


def absolute_source(source: str) -> str:
    """A dataset source as a run or a worker records it: an existing path made absolute (usable from any directory,
    by any process); a dataset id, an OGBench name or a `collect:` spec as given."""
    path = Path(source).expanduser()
    return str(path.resolve()) if path.exists() else source


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> None:
    """`write(tmp)` fills a temporary file beside `path`, which is flushed to disk and renamed onto `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes files private; results and datasets are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    atomic_write(path, lambda tmp: tmp.write_bytes(data))


def jsonable(value: Any) -> Any:
    """`json.dumps(default=jsonable)`: NumPy scalars and arrays, dataclasses and paths as plain JSON."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def write_json(path: str | os.PathLike, payload: Any) -> None:
    atomic_write_bytes(path, (json.dumps(payload, indent=1, default=jsonable) + "\n").encode())


def read_json(path: str | os.PathLike) -> dict[str, Any]:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise O2OError(f"{path}: cannot be read ({e})") from e
