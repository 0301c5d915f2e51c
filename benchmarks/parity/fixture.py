"""Stage 2's common part, run in the references' environment (numpy only, no o2o import): read the inputs of stage 1,
and write a fixture: the inputs, the reference's losses per update and its parameters after 1 and after all updates
(in o2o's parameter structure), with a sibling JSON that says where the numbers come from.

An adapter (`benchmarks/parity/<algo>.py`) does the rest: convert o2o's parameters into the reference's modules, inject
the draws, run the reference's update, convert its parameters back.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import types
from pathlib import Path

import numpy as np

FIXTURES = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "parity"
TOLERANCE_NOTE = {"note": "relative errors ||o2o - reference|| / ||reference||: losses per loss over its updates, "
                          "after_1 per parameter array, after_all per network; float32 on both sides"}


class Inputs:
    """Stage 1's .npz: `meta` (o2o's config and the sizes), `arrays` by flat name, and views of its parts."""

    def __init__(self, path: Path):
        with np.load(path) as data:
            self.arrays = {name: data[name] for name in data.files if name != "meta"}
            self.meta = json.loads(str(data["meta"]))
        self.config = self.meta["config"]
        self.steps = self.meta["steps"]

    def tree(self, prefix: str) -> dict:
        """The arrays under `prefix/` as a nested dict."""
        return unflatten({k[len(prefix) + 1:]: v for k, v in self.arrays.items() if k.startswith(prefix + "/")})

    def draws(self, name: str) -> np.ndarray:
        """(steps, ...) float32: the draws of every update."""
        return self.arrays[f"draws/{name}"].astype(np.float32)


def flatten(tree, prefix: str) -> dict[str, np.ndarray]:
    """A nested dict of arrays as {"prefix/a/b": array} (stage 1 writes its inputs with it too)."""
    if not isinstance(tree, dict):
        return {prefix: np.asarray(tree)}
    out = {}
    for key, value in tree.items():
        out.update(flatten(value, f"{prefix}/{key}"))
    return out


def unflatten(flat: dict[str, np.ndarray]) -> dict:
    tree: dict = {}
    for name, value in flat.items():
        *path, leaf = name.split("/")
        node = tree
        for part in path:
            node = node.setdefault(part, {})
        node[leaf] = value
    return tree


def arguments(description: str, *flags: tuple[str, str]) -> argparse.Namespace:
    """The adapters' command line; `flags`: (name, help) of an adapter's own switches."""
    parser = argparse.ArgumentParser(description=description)
    for flag, text in flags:
        parser.add_argument(flag, action="store_true", help=text)
    parser.add_argument("--reference", type=Path, required=True, help="a work tree of the reference's repository")
    parser.add_argument("--inputs", type=Path, required=True, help="stage 1's .npz (benchmarks/parity/inputs.py)")
    parser.add_argument("--out", type=Path, default=None, help="the fixture (default tests/fixtures/parity/ALGO.npz)")
    parser.add_argument("--float64", action="store_true",
                        help="run the reference in float64 (a diagnostic, with --out elsewhere: o2o in float64 must then "
                             "match it to ~1e-10, which shows the float32 differences are rounding)")
    return parser.parse_args()


def extra_flags(args: argparse.Namespace) -> list[str]:
    """An adapter's own switches that were on, as command-line flags."""
    common = {"reference", "inputs", "out", "float64"}
    return [f"--{k.replace('_', '-')}" for k, v in vars(args).items() if k not in common and v is True]


def commit_of(reference: Path) -> str:
    return subprocess.run(["git", "-C", str(reference), "rev-parse", "HEAD"], check=True, capture_output=True,
                          text=True).stdout.strip()


def write(args: argparse.Namespace, inputs: Inputs, *, repository: str, why: str, losses: dict[str, list[float]],
          after_1: dict, after_all: dict, tolerance: dict, injected: list[str], not_injected: list[str],
          deviations: list[dict], versions: dict[str, str], notes: list[str] = (), name: str | None = None,
          kind: str = "parity", gradient_free: dict[str, str] | None = None, updates_per_call: int = 1) -> Path:
    """The fixture `<out>.npz` (inputs + `reference/losses/NAME` (steps,), `reference/after_1/...`,
    `reference/after_all/...`) and `<out>.json` (provenance, tolerance, injected draws, deviations). `kind`: "parity"
    (o2o must match it) or "deviation" (the reference as it runs, where o2o departs from it in the documented way);
    `name`: the fixture's file name, the algorithm's by default. `gradient_free`: parameter arrays (o2o's flat names)
    that no loss reaches, with why: their first steps are Adam steps on rounding noise, left out of the after-one-update
    comparison (they stay in the per-network one). `updates_per_call`: o2o updates one call of the reference's update
    makes (RLPD's UTD critic steps and one actor step): `after_1` is the parameters after its first call."""
    algo = inputs.meta["algo"]
    out = args.out or FIXTURES / f"{name or algo}.npz"
    out.parent.mkdir(parents=True, exist_ok=True)
    arrays = dict(inputs.arrays)
    for loss, values in losses.items():
        assert len(values) == inputs.steps, f"{loss}: {len(values)} losses for {inputs.steps} updates"
        arrays[f"reference/losses/{loss}"] = np.asarray(values, np.float64 if args.float64 else np.float32)
    arrays.update(flatten(after_1, "reference/after_1"))
    arrays.update(flatten(after_all, "reference/after_all"))
    missing = {k.split("/", 1)[1] for k in arrays if k.startswith("init/")} - {
        k.split("/", 2)[2] for k in arrays if k.startswith("reference/after_1/")}
    assert not missing, f"the adapter returned no parameters for {sorted(missing)}"
    np.savez_compressed(out, meta=np.array(json.dumps(inputs.meta)), **arrays)
    record = {
        "algo": algo,
        "kind": kind,
        "reference": {"repository": f"https://github.com/{repository}", "commit": commit_of(args.reference),
                      "why": why},
        "command": f"benchmarks/parity/regenerate.sh {algo}",  # every fixture of the algorithm
        "stages": [inputs.meta["command"], " ".join(["python", f"benchmarks/parity/{Path(sys.argv[0]).name}",
                                                     "--reference REFERENCE --inputs INPUTS", *extra_flags(args)])],
        "versions": versions,
        "steps": inputs.steps,
        "compared": {"losses": sorted(losses), "parameters": sorted(after_1)},
        "tolerance": tolerance,
        "injected_draws": injected,
        "not_injected": not_injected,
        "deviations": deviations,
        "notes": list(notes),
        **({"gradient_free": gradient_free} if gradient_free else {}),
        **({"updates_per_call": updates_per_call} if updates_per_call > 1 else {}),
    }
    out.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"{out} ({out.stat().st_size / 1e3:.0f} kB), {out.with_suffix('.json')}")
    return out


class LossRecorder:
    """The values of the losses a PyTorch update back-propagates, in order: wraps `torch.Tensor.backward` while
    active (the references keep their losses in local variables)."""

    def __init__(self, torch):
        self.torch, self.values = torch, []

    def __enter__(self):
        original = self.original = self.torch.Tensor.backward
        values = self.values

        def backward(tensor, *args, **kwargs):
            values.append(float(tensor.detach()))
            return original(tensor, *args, **kwargs)

        self.torch.Tensor.backward = backward
        return self

    def __exit__(self, *exc):
        self.torch.Tensor.backward = self.original

    def take(self) -> list[float]:
        values, self.values[:] = list(self.values), []
        return values


def call_with_draws(order: tuple[tuple[str, str], ...], draws: dict, call):
    """`call()` with `jax.random.normal` / `uniform` returning `draws[name]` for the (name, function) pairs of `order`,
    in that order (each checked for the shape the reference asks); a draw made after those is the function's own (FQL's
    logged mse). Every injected draw must be made. For JAX references whose draws come from `jax.random` calls."""
    import jax
    from unittest import mock

    queues = {"normal": [], "uniform": []}
    for name, function in order:
        queues[function].append((name, draws[name]))
    originals = {name: getattr(jax.random, name) for name in queues}

    def injected(function):
        def draw(key, shape=(), *rest, **kwargs):
            if not queues[function]:
                return originals[function](key, shape, *rest, **kwargs)
            name, value = queues[function].pop(0)
            assert tuple(shape) == value.shape, f"the reference draws {tuple(shape)} for {name}, not {value.shape}"
            return value
        return draw

    with mock.patch.object(jax.random, "normal", injected("normal")), \
            mock.patch.object(jax.random, "uniform", injected("uniform")):
        result = call()
    assert not queues["normal"] and not queues["uniform"], "a draw was not made"
    return result


def stub_training_imports(*names: str) -> None:
    """Stand-in modules for imports a reference's file makes for its training script only: any attribute is a
    placeholder class (annotations such as `gym.Env`), and `pyrallis.wrap()` (a decorator on that script's entry point)
    returns the function unchanged."""
    for name in names:
        module = sys.modules.setdefault(name, types.ModuleType(name))
        module.__getattr__ = lambda attribute: _placeholder(attribute)
        if name == "pyrallis":
            module.wrap = lambda *args, **kwargs: (lambda function: function)


def _placeholder(attribute: str):
    if attribute.startswith("__"):  # module protocol lookups (__file__, __path__, ...): absent, as in any module
        raise AttributeError(attribute)
    return type(attribute, (), {})
