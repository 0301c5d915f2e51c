"""The `o2o` command. Thin: parse, call the library, print. Errors are one line on stderr and a non-zero exit.

`main` runs the app (`common`, with the options and printing the commands share); the commands live in `training`
(train, online, finetune, run, eval), `data` (datasets, collect, zoo) and `grid` (bench, report, algos, quickstart)."""

from __future__ import annotations

import errno
import sys
import warnings

# each module registers its commands on `app`, in this order in `o2o --help`
from o2o.cli import training, data, grid  # noqa: F401, I001
from o2o.cli.common import app
from o2o.errors import Interrupted, O2OError


def _warn_on_stderr(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"warning: {message}", file=sys.stderr)


def main() -> None:
    warnings.showwarning = _warn_on_stderr
    try:
        app()
    except O2OError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(130 if isinstance(e, Interrupted) else 1)
    except OSError as e:
        # a last resort: commands check their destinations first, but a disk can fill or a mount turn read-only later
        if e.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS):
            raise
        print(f"error: {e.filename}: {e.strerror}" if e.filename else f"error: {e.strerror}", file=sys.stderr)
        sys.exit(1)
    except SystemExit as e:
        # typer turns Ctrl-C into exit 130 itself (typer.core._main: KeyboardInterrupt -> Exit(130) -> sys.exit),
        # silently; only the exception chain tells it from a command's own exit
        if isinstance(getattr(e.__context__, "__cause__", None), KeyboardInterrupt):
            print("error: interrupted", file=sys.stderr)
        raise
