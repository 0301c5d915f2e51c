"""Pages of the documentation site made from the code at build time, so that they cannot drift from it:

- each `o2o` command's page (written by hand: what it does, examples) gets the command's usage at the top and its
  options at the end, read from the Typer app; the nav's Commands section lists the app's commands, so a command
  without a page fails the strict build;
- one page per agent module (an algorithm family): its equations (the module's docstring), the registry's records,
  every Config field with its docstring and each algorithm's default, the presets and a "checked against" line;
- every benchmarks/results/*.md and benchmarks/results/**/README.md, under results/ (README.md as the index);
- in a page, `<!-- o2o:algorithm-table -->` becomes the registry's table, `<!-- o2o:commands -->` the list of
  commands and the options every command takes, `<!-- o2o:inherited-fields -->` the config fields a fine-tuning run
  with another algorithm keeps.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import importlib
import inspect
import itertools
import json
import logging
import posixpath
import re
import textwrap
import typing
from enum import Enum
from pathlib import Path

from mkdocs.structure.files import File

from o2o import algorithms
from o2o.agents import INHERITED_FIELDS, get_algorithm, read_fields
from o2o.cli import app as o2o_app

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
PARITY = ROOT / "tests" / "fixtures" / "parity"
FAMILY_TITLES = {"bc": "Behaviour cloning", "td3_bc": "TD3+BC and TD3", "iql": "IQL", "awac": "AWAC",
                 "riql": "RIQL", "cql": "CQL and Cal-QL", "rebrac": "ReBRAC", "fql": "Flow Q-learning", "dt": "Decision Transformer",
                 "edac": "Q-ensembles: SAC-N, EDAC, LB-SAC", "sac": "SAC, RLPD and WSRL", "famo2o": "FamO2O",
                 "qc": "Q-chunking: QC and QC-FQL", "ro2o": "RO2O", "sung": "SUNG on TD3+BC", "sung_cql": "SUNG on CQL"}
LINK = re.compile(r"(!?\[[^\]]*\])\(([^)\s]+)\)")
OPTION = re.compile(r"(?<![\w-])(--[a-z][\w-]*)")
log = logging.getLogger("mkdocs.hooks.o2o")  # a warning fails `mkdocs build --strict`


# ---- the nav and the generated files ---------------------------------------------------------------------------

def on_files(files, config):
    result_pages, attachments = results_site()
    pages = {**algorithm_pages(), **result_pages}
    for path, text in pages.items():
        files.append(File.generated(config, path, content=text))
    for path, source in attachments.items():
        files.append(File.generated(config, path, abs_src_path=str(source)))
    _extend(config.nav, "commands/index.md", [{name: f"commands/{_slug(name)}.md"} for name, _ in commands()])
    for landing in ("algorithms/index.md", "results/index.md"):
        section = landing.split("/")[0] + "/"
        _extend(config.nav, landing, [{_title(text, path): path} for path, text in pages.items()
                                      if path.startswith(section) and path != landing])
    return files


def _extend(nav: list, landing: str, entries: list) -> None:
    """Append `entries` to the nav section whose first page is `landing`."""
    for item in nav:
        children = next(iter(item.values())) if isinstance(item, dict) else None
        if isinstance(children, list):
            first = children[0]
            if (next(iter(first.values())) if isinstance(first, dict) else first) == landing:
                children.extend(entries)
                return
            _extend(children, landing, entries)


def _title(markdown: str, path: str) -> str:
    """The page's first heading, else its file name."""
    return next((line[2:].replace("`", "").strip() for line in markdown.splitlines() if line.startswith("# ")),
                Path(path).stem)


def on_page_markdown(markdown, page, config, files):
    src = page.file.src_uri
    markdown = markdown.replace("<!-- o2o:algorithm-table -->", algorithms.markdown_table(links={
        r.name: posixpath.relpath(f"algorithms/{r.module}.md", posixpath.dirname(src)) for r in algorithms.RECORDS}))
    markdown = markdown.replace("<!-- o2o:commands -->", command_list())
    markdown = markdown.replace("<!-- o2o:inherited-fields -->", ", ".join(f"`{f}`" for f in INHERITED_FIELDS))
    if src.startswith("commands/") and src != "commands/index.md":
        found = {f"commands/{_slug(name)}.md": (name, callback) for name, callback in commands()}
        if src not in found:
            log.warning(f"{src}: o2o has no such command")
            return markdown
        name, callback = found[src]
        title, _, rest = markdown.partition("\n")
        markdown = f"{title}\n\n{_help(callback)}\n\n```\n{usage(name, callback)}\n```\n{rest}\n\n## Options\n\n" + \
            options_table(callback)
    return markdown


# ---- commands --------------------------------------------------------------------------------------------------

def commands(app=o2o_app, prefix: str = "") -> list[tuple[str, typing.Callable]]:
    """Every `o2o` command as ("data info", its function), in `o2o --help`'s order."""
    found = [(prefix + (c.name or c.callback.__name__.replace("_", "-")), c.callback) for c in app.registered_commands]
    for group in app.registered_groups:
        found += commands(group.typer_instance, f"{prefix}{group.name} ")
    return found


def _slug(name: str) -> str:
    return name.replace(" ", "-")


def _help(callback) -> str:
    return _code_options(" ".join(inspect.getdoc(callback).split()))


def _code_options(text: str) -> str:
    """The text with the options it names (`--steps`) as code, outside its code spans."""
    parts = text.split("`")
    parts[::2] = [OPTION.sub(r"`\1`", part) for part in parts[::2]]
    return "`".join(parts)


class Parameter(typing.NamedTuple):
    label: str  # as typed: --dataset, or ALGO for an argument
    option: bool
    kind: typing.Any  # the declared type, Optional taken off
    default: typing.Any
    required: bool
    help: str


def parameters(callback) -> list[Parameter]:
    """The parameters of a command's function, as Typer reads them."""
    from typer.models import OptionInfo, ParameterInfo
    from typer.utils import get_params_from_function

    found = []
    for name, meta in get_params_from_function(callback).items():
        info = meta.default if isinstance(meta.default, ParameterInfo) else None
        default = info.default if info is not None else meta.default
        required = default in (..., inspect.Parameter.empty)
        option = isinstance(info, OptionInfo) or (info is None and not required)
        label = (info.param_decls[0] if info is not None and info.param_decls else
                 f"--{name.replace('_', '-')}" if option else name.upper())
        kind = meta.annotation
        if type(None) in typing.get_args(kind):  # Optional[T]: T
            kind = next(k for k in typing.get_args(kind) if k is not type(None))
        found.append(Parameter(label, option, kind, None if required else default, required,
                               (info.help if info is not None else None) or ""))
    return found


def usage(name: str, callback) -> str:
    words = [f"o2o {name}", "[OPTIONS]"]
    for p in parameters(callback):
        if not p.option:
            word = p.label + ("..." if typing.get_origin(p.kind) is list else "")
            words.append(word if p.required else f"[{word}]")
    return " ".join(words)


def options_table(callback) -> str:
    rows = ["| argument / option | value | default | what it does |", "|---|---|---|---|"]
    for p in parameters(callback):
        element = typing.get_args(p.kind)[0] if typing.get_origin(p.kind) is list else p.kind
        if p.kind is bool:
            value = "flag"
        elif isinstance(element, type) and issubclass(element, Enum):
            value = " \\| ".join(member.value for member in element)
        else:
            value = getattr(element, "__name__", str(element))
        if typing.get_origin(p.kind) is list:
            value += ", repeatable" if p.option else " ..."
        default = p.default.value if isinstance(p.default, Enum) else p.default
        if p.required:
            default = "required" if p.option else ""
        else:
            default = "" if default is None or default is False else f"`{default}`"
        rows.append(f"| `{p.label}` | {value} | {default} | {_cell(p.help)} |")
    return "\n".join(rows)


def command_list() -> str:
    rows = ["| command | what it does |", "|---|---|"]
    rows += [f"| [`o2o {name}`]({_slug(name)}.md) | {_cell(_help(callback))} |" for name, callback in commands()]
    return "\n".join(rows) + "\n\nOptions of `o2o` itself, given before the command:\n\n" + \
        options_table(o2o_app.registered_callback.callback)


def _cell(text: str) -> str:
    return _code_options(" ".join(text.split())).replace("|", "\\|")


# ---- algorithm families ----------------------------------------------------------------------------------------

def algorithm_pages() -> dict[str, str]:
    """algorithms/MODULE.md for each agent module, with every registry record that runs it."""
    families: dict[str, list[algorithms.Algorithm]] = {}
    for r in algorithms.RECORDS:
        families.setdefault(r.module, []).append(r)
    pages = {}
    for module_name, records in families.items():
        module = importlib.import_module(f"o2o.agents.{module_name}")
        names = [r.name for r in records]
        parts = [f"# {FAMILY_TITLES.get(module_name, module_name)}", algorithms.markdown_table(names),
                 f"## Objective\n\nFrom `o2o/agents/{module_name}.py`:",
                 _docstring_markdown(inspect.getdoc(module)),
                 "## Checked against\n\n" + "\n".join(checked_against(r) for r in records),
                 ("## Configuration\n\nEvery field with each algorithm's default (its variant applied, no preset). "
                  "`--set FIELD=VALUE` overrides one; a dash marks a field the algorithm does not read, whose `--set` "
                  "is refused."),
                 config_table(module.Config, names)]
        if any(r.presets for r in records):
            parts.append("## Presets\n\nThe papers' per-dataset settings: `--preset auto` (the default) applies the "
                         "row of the dataset's env and level, else of its env; a row named for no dataset (RO2O's "
                         "`antmaze-lcb`) applies by `--preset NAME` only; `--preset none` applies none; `--set` wins "
                         "over a preset.")
        parts += [f"### `{r.name}`\n\n{presets_table(r)}" for r in records if r.presets]
        pages[f"algorithms/{module_name}.md"] = "\n\n".join(parts) + "\n"
    return pages


def checked_against(r: algorithms.Algorithm) -> str:
    """The registry's record of what the update was checked against (`o2o.algorithms.Check`, held to the parity
    fixtures by tests/test_checked_against.py), with each kept deviation's measured effect from the fixture."""
    check = r.checked
    if check is None:
        return f"- `{r.name}`: not yet checked against a reference implementation."
    line = f"- `{r.name}`: [{check.code}](https://github.com/{check.code})"
    if not check.commit:
        return line + ": update parity not yet checked."
    line += (f" at commit `{check.commit[:10]}`: one and 100 chained updates from the same parameters, batch and random "
             "draws agree within the fixture's float32 tolerance (`tests/test_parity.py`).")
    fixture = json.loads((PARITY / f"{check.fixture or r.name}.json").read_text())
    deviations = {d["name"]: d for d in fixture.get("deviations", [])}
    for name in check.deviations:
        d = deviations[name]
        line += (f"\n    - kept by design, {name}: the reference {d['reference']}; o2o {d['o2o']}"
                 + (f"; measured effect: {d['effect']}" if d.get("effect") else ""))
    return line + (f"\n    - learning parity at equal budget: {check.learning}" if check.learning else "")


def _docstring_markdown(doc: str) -> str:
    """A module docstring as Markdown: its indented lines (the equations) as code blocks, the rest as text."""
    blocks: list[tuple[bool, list[str]]] = []
    for line in doc.splitlines():
        indented = line.startswith("    ")
        if not blocks or blocks[-1][0] != indented:
            blocks.append((indented, []))
        blocks[-1][1].append(line)
    return "\n\n".join(f"```text\n{textwrap.dedent(chr(10).join(lines))}\n```" if indented else "\n".join(lines).strip()
                       for indented, lines in blocks)


def field_docs(config: type) -> dict[str, str]:
    """The docstring under each field of a Config class and of the Configs it extends."""
    docs: dict[str, str] = {}
    for cls in reversed(config.__mro__[:-1]):
        body = ast.parse(textwrap.dedent(inspect.getsource(cls))).body[0].body
        docs.update({a.target.id: " ".join(b.value.value.split()) for a, b in itertools.pairwise(body)
                     if isinstance(a, ast.AnnAssign) and isinstance(b, ast.Expr) and isinstance(b.value, ast.Constant)})
    return docs


def config_table(config: type, names: list[str]) -> str:
    defaults = {name: dataclasses.asdict(get_algorithm(name)[1]) for name in names}
    docs = field_docs(config)
    for field in set(defaults[names[0]]) - set(docs):
        log.warning(f"{config.__module__}.Config.{field} has no docstring")
    rows = ["| field | type | " + " | ".join(f"`{n}`" for n in names) + " | what it is |",
            "|---" * (len(names) + 3) + "|"]
    for field in dataclasses.fields(config):
        values = [_value(defaults[n][field.name]) if field.name in read_fields(n) else "—" for n in names]
        rows.append(f"| `{field.name}` | `{field.type}` | {' | '.join(values)} | {_cell(docs.get(field.name, ''))} |")
    return "\n".join(rows)


def presets_table(r: algorithms.Algorithm) -> str:
    keys = list(dict.fromkeys(k for values in r.presets.values() for k in values))
    rows = ["| dataset | " + " | ".join(f"`{k}`" for k in keys) + " |", "|---" * (len(keys) + 1) + "|"]
    rows += [f"| `{dataset}` | " + " | ".join(_value(values[k]) if k in values else "" for k in keys) + " |"
             for dataset, values in r.presets.items()]
    return "\n".join(rows)


def _value(value) -> str:
    return f"`{value}`" if isinstance(value, str) else f"`{value!r}`"


# ---- results -----------------------------------------------------------------------------------------------------

def results_site() -> tuple[dict[str, str], dict[str, Path]]:
    """benchmarks/results' pages as the site shows them (site path -> Markdown; README.md becomes the index) and the
    other files of benchmarks/results they link to (site path -> file). A link to anything else in the repository,
    which the site does not hold, becomes its path."""
    sources = sorted({*RESULTS.glob("*.md"), *RESULTS.glob("**/README.md")})
    site = {p: "results/" + (p.relative_to(RESULTS).with_name("index.md") if p.name == "README.md"
                             else p.relative_to(RESULTS)).as_posix() for p in sources}
    pages: dict[str, str] = {}
    attachments: dict[str, Path] = {}
    linked: list[str] = []  # the pages the index links to, in its order

    def rewrite(source: Path, page: str, match: re.Match) -> str:
        label, target = match.groups()
        if "://" in target or target.startswith(("#", "mailto:")):
            return match.group(0)
        path, hash_, anchor = target.partition("#")
        resolved = (source.parent / path).resolve()
        if resolved.is_dir() and resolved / "README.md" in site:
            resolved = resolved / "README.md"
        if resolved.is_file() and RESULTS in resolved.parents:
            to = site.get(resolved) or "results/" + resolved.relative_to(RESULTS).as_posix()
            if resolved not in site:
                attachments[to] = resolved
            if page == "results/index.md" and to not in linked:
                linked.append(to)
            return f"{label}({posixpath.relpath(to, posixpath.dirname(page))}{hash_}{anchor})"
        shown = resolved.relative_to(ROOT).as_posix() + ("/" if resolved.is_dir() else "") if ROOT in resolved.parents \
            else target
        text = label.lstrip("!")[1:-1]
        return f"`{shown}`" if shown.endswith(text.strip("`")) else f"{text} (`{shown}`)"

    for source, page in site.items():
        pages[page] = LINK.sub(functools.partial(rewrite, source, page), source.read_text())
    index = pages.pop("results/index.md", "# Results\n")
    unlinked = [page for page in pages if page not in linked]
    if unlinked:
        index = index.rstrip() + "\n\n## More measurements\n\n" + "\n".join(
            f"- [{_title(pages[page], page)}]({posixpath.relpath(page, 'results')})" for page in unlinked) + "\n"
    ordered = [page for page in linked if page in pages] + unlinked  # the nav follows the index
    return {"results/index.md": index, **{page: pages[page] for page in ordered}}, attachments
