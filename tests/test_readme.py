"""The README is a user's document: the two commands first, the registry's algorithm table, a bounded length, and
links that lead somewhere. Measurements live in benchmarks/results/, each file naming the command that regenerates it."""

import re
from pathlib import Path

ROOT = Path(__file__).parents[1]
README = (ROOT / "README.md").read_text()
MAX_LINES = 350


def test_readme_stays_a_users_document():
    assert len(README.splitlines()) <= MAX_LINES, "measurements go to benchmarks/results/<topic>.md, history to CHANGELOG.md"


def test_readme_starts_with_the_main_and_the_test_command():
    head = README.splitlines()[:20]
    main, test = head.index("<!-- main-command -->"), head.index("<!-- test-command -->")
    assert main < test
    assert "o2o quickstart" in head[main + 2] and "python -m pytest" in head[test + 2]


def test_readme_algorithm_table_is_the_registry():
    from o2o.algorithms import markdown_table

    assert markdown_table() in README


def test_readme_links_to_files_that_exist():
    targets = [t for t in re.findall(r"\]\(([^)#\s]+)", README) if "://" not in t]
    assert targets, "the README links to its results files"
    missing = [t for t in targets if not (ROOT / t).exists()]
    assert not missing, f"README links to missing files: {missing}"


def test_every_results_file_names_the_command_that_regenerates_it():
    for page in (ROOT / "benchmarks" / "results").glob("*.md"):
        if page.name == "README.md":
            continue
        text = page.read_text()
        commands = re.findall(r"^(?: {4}|\t)(?:\S.*)?\b(?:o2o|python|pytest)\b", text, flags=re.M)
        assert commands, f"{page.name} names no command that regenerates it (an indented code line)"
        assert re.search(r"20\d\d-\d\d-\d\d", text), f"{page.name} gives no date"
