"""Rewrite a wheel without some of its folders, as version `VERSION+slim`: what wheels.sh does to dm_control, whose
56 MB wheel is 90% assets of its own suites (locomotion, the control suite) that OGBench never loads; OGBench's
manipulation envs import only dm_control.mjcf and what it needs (mujoco wrapper, _render, rl, utils).

    python benchmarks/gpu/slim_wheel.py WHEEL PREFIX... -> prints the new wheel's path (the old one is removed)

The new wheel is a valid wheel (its RECORD rewritten with the kept files' hashes); `pip list` shows it as
`1.0.52+slim`, so nobody mistakes it for the published one.
"""

from __future__ import annotations

import base64
import hashlib
import sys
import zipfile
from pathlib import Path

SUFFIX = "slim"


def slim(wheel: Path, drop: list[str]) -> Path:
    """Write WHEEL's files except those under any of `drop` (paths inside the wheel, e.g. `dm_control/suite/`) to a
    wheel of version `<version>+slim` beside it; returns its path."""
    name, version, rest = wheel.name.split("-", 2)
    new_version = f"{version}+{SUFFIX}"
    old_info, new_info = f"{name}-{version}.dist-info/", f"{name}-{new_version}.dist-info/"
    target = wheel.with_name(f"{name}-{new_version}-{rest}")
    records = []
    with zipfile.ZipFile(wheel) as source, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as out:
        for item in source.infolist():
            path = item.filename
            if item.is_dir() or any(path.startswith(prefix) for prefix in drop) or path == old_info + "RECORD":
                continue
            data = source.read(item)
            if path.startswith(old_info):
                path = new_info + path[len(old_info):]
                if path == new_info + "METADATA":
                    data = data.replace(f"\nVersion: {version}\n".encode(), f"\nVersion: {new_version}\n".encode(), 1)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            records.append(f"{path},sha256={digest},{len(data)}")
            out.writestr(path, data)
        out.writestr(new_info + "RECORD", "\n".join(records + [f"{new_info}RECORD,,"]) + "\n")
    return target


def main() -> None:
    if len(sys.argv) < 3:
        sys.exit("usage: slim_wheel.py WHEEL PREFIX...")
    wheel = Path(sys.argv[1])
    target = slim(wheel, sys.argv[2:])
    wheel.unlink()
    print(target)


if __name__ == "__main__":
    main()
