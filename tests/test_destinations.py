"""A destination that cannot be written is refused before any work, in one line naming the option to change; nothing
already there is overwritten; a disk that fills later still ends in one line, not a traceback.

Tests run as root here, where permission bits stop nothing: an unwritable destination is one under a regular file."""

import errno
import json
import os
import time

import pytest
from conftest import make_dataset, run_cli

from o2o.data import write_o2o
from o2o.errors import O2OError
from o2o.files import check_destination

FAST = 1.0  # seconds: a refusal costs a path check, not a collection (20 s and more) or a Ray start


@pytest.fixture
def a_file(tmp_path):
    path = tmp_path / "a-file"
    path.write_text("not a directory")
    return path


def first_line(stderr: str) -> str:
    return stderr.strip().splitlines()[0]


def test_check_destination_refuses_what_exists_and_what_cannot_be_created(tmp_path, a_file):
    with pytest.raises(O2OError, match=r"a-file: already exists; choose another --out or remove it first"):
        check_destination(a_file)
    with pytest.raises(O2OError, match=r"a-file/deep/sub: cannot be created, .*a-file is not a directory; choose another DEST"):
        check_destination(a_file / "deep" / "sub", name="DEST")
    assert check_destination(tmp_path, may_exist=True) == tmp_path  # a command that resumes or updates into it
    assert check_destination(tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]  # the probe leaves nothing behind


@pytest.mark.skipif(not os.path.ismount("/sys"), reason="no sysfs at /sys (it refuses new files, even to root)")
def test_check_destination_catches_a_directory_root_cannot_write():
    with pytest.raises(O2OError, match=r"/sys/o2o-test/out: cannot be written \(/sys: .+\); choose another --out"):
        check_destination("/sys/o2o-test/out")


def test_collect_refuses_an_existing_out_before_collecting(tmp_path, capsys, monkeypatch):
    from o2o.collect import levels

    monkeypatch.setattr(levels, "collect", lambda *a, **k: pytest.fail("collected before checking --out"))
    existing = tmp_path / "Hopper-v5-random"
    existing.mkdir()
    (existing / "keep.txt").write_text("mine")
    started = time.perf_counter()
    code, _, stderr = run_cli(["collect", "Hopper-v5", "--level", "random", "--transitions", "1000", "--out",
                               str(existing)], capsys)
    assert time.perf_counter() - started < FAST
    assert code == 1
    assert first_line(stderr) == f"error: {existing}: already exists; choose another --out or remove it first"
    assert [p.name for p in existing.iterdir()] == ["keep.txt"]


def test_collect_refuses_an_out_under_a_file_on_both_paths(a_file, capsys, monkeypatch):
    from o2o.collect import levels, ogbench

    monkeypatch.setattr(levels, "collect", lambda *a, **k: pytest.fail("collected before checking --out"))
    monkeypatch.setattr(ogbench, "generate", lambda *a, **k: pytest.fail("collected before checking --out"))
    for args in (["Hopper-v5", "--level", "random"], ["Hopper-v5", "--level", "random", "--format", "minari"],
                 ["cube-single-v0", "--level", "play"]):
        code, _, stderr = run_cli(["collect", *args, "--out", str(a_file / "data")], capsys)
        assert code == 1, args
        assert first_line(stderr).startswith(f"error: {a_file / 'data'}"), args
        assert "is not a directory; choose another --out" in first_line(stderr), args


def test_ogbench_collect_refuses_a_validation_split_it_would_overwrite(tmp_path, capsys, monkeypatch):
    from o2o.collect import ogbench

    monkeypatch.setattr(ogbench, "generate", lambda *a, **k: pytest.fail("collected before checking --out"))
    (tmp_path / "cube-val.npz").write_bytes(b"an earlier validation split")
    code, _, stderr = run_cli(["collect", "cube-single-v0", "--level", "play", "--out", str(tmp_path / "cube")], capsys)
    assert code == 1
    assert first_line(stderr) == f"error: {tmp_path / 'cube-val.npz'}: already exists; choose another --out or remove it first"
    assert (tmp_path / "cube-val.npz").read_bytes() == b"an earlier validation split"


@pytest.fixture
def small_dataset(tmp_path):
    return write_o2o(make_dataset(n=200), tmp_path / "small")


@pytest.mark.parametrize("fmt", ["o2o", "npz", "hdf5", "minari"])
def test_data_convert_never_writes_over_an_existing_dest(small_dataset, tmp_path, capsys, fmt):
    dest = tmp_path / f"existing.{fmt}"
    dest.write_bytes(b"precious")
    code, _, stderr = run_cli(["data", "convert", str(small_dataset), str(dest), "--format", fmt], capsys)
    assert code == 1
    assert first_line(stderr) == f"error: {dest}: already exists; choose another DEST or remove it first"
    assert dest.read_bytes() == b"precious"


def test_data_convert_refuses_a_dest_under_a_file(small_dataset, a_file, capsys):
    code, _, stderr = run_cli(["data", "convert", str(small_dataset), str(a_file / "out.npz"), "--format", "npz"], capsys)
    assert code == 1
    assert first_line(stderr) == f"error: {a_file / 'out.npz'}: cannot be created, {a_file} is not a directory; choose another DEST"


def test_a_full_disk_during_a_write_is_one_line(small_dataset, tmp_path, capsys, monkeypatch):
    import o2o.data

    dest = tmp_path / "out.npz"

    def disk_full(dataset, path):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(o2o.data, "write_npz", disk_full)
    code, _, stderr = run_cli(["data", "convert", str(small_dataset), str(dest), "--format", "npz"], capsys)
    assert code == 1
    assert stderr == f"error: {dest}: {os.strerror(errno.ENOSPC)}\n"


def test_report_refuses_an_out_under_a_file_and_a_directory_that_is_not_a_report(tmp_path, a_file, capsys):
    bench_dir = tmp_path / "bench"
    bench_dir.mkdir()
    (bench_dir / "results.sqlite").write_bytes(b"")  # what makes a bench directory; never opened here
    code, _, stderr = run_cli(["report", str(bench_dir), "--out", str(a_file / "report")], capsys)
    assert code == 1
    assert first_line(stderr) == f"error: {a_file / 'report'}: cannot be created, {a_file} is not a directory; choose another --out"
    other = tmp_path / "other"
    other.mkdir()
    (other / "results.sqlite").write_bytes(b"someone else's")
    code, _, stderr = run_cli(["report", str(bench_dir), "--out", str(other)], capsys)
    assert code == 1
    assert first_line(stderr) == f"error: {other}: already exists; choose another --out or remove it first"
    assert (other / "results.sqlite").read_bytes() == b"someone else's"


def test_zoo_export_refuses_a_dest_under_a_file(tmp_path, a_file, capsys):
    run_dir = tmp_path / "zoo-run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text(json.dumps({
        "kind": "online", "settings": {"algo": "sac", "keep_policy_snapshots": True}, "env_id": "Pendulum-v1",
        "seeds": [0]}))  # no snapshots: the export would fail later, after the destination check
    code, _, stderr = run_cli(["zoo", "export", str(run_dir), "--dest", str(a_file / "Pendulum-v1")], capsys)
    assert code == 1
    assert first_line(stderr) == (f"error: {a_file / 'Pendulum-v1'}: cannot be created, {a_file} is not a directory; "
                                  "choose another --dest")


def test_bench_refuses_a_missing_dataset_before_ray_starts(small_dataset, tmp_path, capsys, monkeypatch):
    from o2o import bench

    monkeypatch.setattr(bench, "_dispatch", lambda *a, **k: pytest.fail("Ray started with a missing dataset"))
    missing = tmp_path / "missing.hdf5"
    out = tmp_path / "bench"
    started = time.perf_counter()
    code, _, stderr = run_cli(["bench", "--algos", "bc", "--datasets", f"{small_dataset},{missing}", "--steps", "10",
                               "--seeds", "1", "--out", str(out), "--quiet"], capsys)
    assert time.perf_counter() - started < FAST
    assert code == 1
    assert first_line(stderr).startswith(f"error: {missing}: no such file, directory or local Minari dataset id")
    assert not out.exists()  # nothing written for a grid that cannot run


def test_bench_accepts_ogbench_tasks_it_can_collect_and_refuses_others(tmp_path, monkeypatch):
    from o2o import bench

    monkeypatch.chdir(tmp_path)
    for variable in ("O2O_DATASETS", "OGBENCH_DATA_DIR"):
        monkeypatch.setenv(variable, str(tmp_path / "nothing-here"))
    monkeypatch.setenv("HOME", str(tmp_path))  # OGBench's cache, ~/.ogbench/data, is empty too
    bench.check_datasets(["cube-single-play-singletask-task2-v0", "collect:Hopper-v5:random:1000"])
    with pytest.raises(O2OError, match=r"OGBench dataset antmaze-large-navigate-v0 not found"):
        bench.check_datasets(["antmaze-large-navigate-singletask-task1-v0"])
