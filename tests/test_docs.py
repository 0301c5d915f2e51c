"""The documentation site (mkdocs.yml, docs/) builds with `mkdocs build --strict`: a broken link or anchor, a page
left out of the nav, an `o2o` command without a page or a config field without a docstring fails the build, and so
this suite. The pages made from the code (docs/hooks.py) are checked to be there."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "docs" / "hooks.py")
hooks = importlib.util.module_from_spec(_spec)  # docs/hooks.py: the pages the site makes from the code
_spec.loader.exec_module(hooks)


def build(config: Path, site: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), "-d", str(site)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})


def test_the_site_builds_strictly_with_a_page_for_every_command_algorithm_family_and_result(tmp_path):
    site = tmp_path / "site"
    result = build(ROOT / "mkdocs.yml", site)
    assert result.returncode == 0, result.stderr[-4000:]

    for page in ("index.html", "getting-started/index.html", "commands/train/index.html",
                 "algorithms/td3_bc/index.html", "results/index.html", "api/index.html"):
        assert (site / page).is_file(), page
    for name, _ in hooks.commands():
        assert (site / "commands" / hooks._slug(name) / "index.html").is_file(), name
    for path in hooks.algorithm_pages():
        assert (site / path.removesuffix(".md") / "index.html").is_file(), path
    for path in hooks.results_site()[0]:
        assert (site / path.removesuffix(".md").removesuffix("index") / "index.html").is_file(), path

    train = (site / "commands/train/index.html").read_text()
    assert "o2o train [OPTIONS] [ALGO]" in train and "<code>--eval-every</code>" in train  # usage and options
    td3_bc = (site / "algorithms/td3_bc/index.html").read_text()
    assert "<code>policy_noise</code>" in td3_bc and "Std of the target policy smoothing noise" in td3_bc
    assert "L_Q = sum_i E" in td3_bc  # the module's equations
    assert 'id="o2o.data.load_dataset"' in (site / "api/index.html").read_text()


@pytest.mark.parametrize("link, breaks", [("other.md#other", False), ("missing.md", True), ("other.md#missing", True)])
def test_a_broken_link_or_anchor_fails_the_strict_build(tmp_path, link, breaks):
    """mkdocs.yml's theme, Markdown and validation settings on a two-page site (a second, where the whole site takes
    several): a link to a page that does not exist or to an anchor a page lacks fails; the same link done right
    builds."""
    settings = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text(f"# Home\n\nSee [the other page]({link}).\n")
    (docs / "other.md").write_text("# Other\n\nText.\n")
    config = {key: settings[key] for key in ("theme", "markdown_extensions", "validation")}
    (tmp_path / "mkdocs.yml").write_text(yaml.safe_dump({**config, "site_name": "t", "docs_dir": str(docs)}))

    result = build(tmp_path / "mkdocs.yml", tmp_path / "site")
    assert (result.returncode != 0) == breaks, result.stderr[-4000:]
    if breaks:
        assert link.split("#")[-1] in result.stderr
