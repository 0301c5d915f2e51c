"""The registry's "checked against" records (`o2o.algorithms.CHECKS`, shown by `o2o algos`, the README's table and the
documentation) say exactly what the parity fixtures hold: the same reference repository and commit, and every
deviation the fixture names kept by design (a fixture's deviation may also be a bug since fixed in o2o)."""

import json
from pathlib import Path

import pytest
from conftest import run_cli

from o2o.agents import REWARD_BONUSES
from o2o.algorithms import CHECKS, REGISTRY

FIXTURES = Path(__file__).parent / "fixtures" / "parity"


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_a_check_is_the_fixture_it_names(name):
    check = CHECKS[name]
    assert name in REGISTRY, f"CHECKS names {name}, which is not a registered algorithm"
    assert check.commit, f"{name}: a check names the commit its fixture was made at"
    fixture = json.loads((FIXTURES / f"{check.fixture or name}.json").read_text())
    assert fixture["reference"]["repository"] == f"https://github.com/{check.code}"
    assert fixture["reference"]["commit"] == check.commit
    named = [d["name"] for d in fixture.get("deviations", [])]
    assert set(check.deviations) <= set(named), f"{name}: the registry names deviations its fixture does not"
    left_out = [d for d in named if d not in check.deviations]
    assert all("fixed" in d for d in left_out), f"{name}: the fixture's deviations {left_out} are not in the registry"


def test_every_algorithm_fixture_is_claimed_by_the_registry():
    fixtures = {p.stem for p in FIXTURES.glob("*.json")}
    claimed = {check.fixture or name for name, check in CHECKS.items()}
    # as-is and other deviation fixtures beside an algorithm's own (an algorithm named with a hyphen is no variant)
    variants = {f for f in fixtures if "-" in f and f not in REGISTRY}
    assert fixtures - variants - set(REWARD_BONUSES) == claimed  # a reward bonus's fixture: its estimator's (sera)
    assert set(REGISTRY) == set(CHECKS), f"unchecked: {sorted(set(REGISTRY) - set(CHECKS))}"


def test_the_table_cell_says_what_was_checked():
    assert CHECKS["td3"].summary() == "sfujim/TD3@34770cc: update ✓"
    assert CHECKS["awac"].summary() == "tinkoff-ai/CORL@6afec90: update ✓, 2 deviations kept"
    assert CHECKS["iql"].summary().startswith("ikostrikov/implicit_q_learning@09d7002: update ✓; learning: ")


def test_algos_json_says_what_each_update_was_checked_against(capsys):
    code, out, _ = run_cli(["algos", "--json"], capsys)
    listed = json.loads(out.splitlines()[-1])
    assert code == 0 and set(listed) == set(REGISTRY)
    assert listed["td3"]["checked"] == {"code": "sfujim/TD3", "fixture": "", "commit": CHECKS["td3"].commit,
                                        "deviations": [], "learning": CHECKS["td3"].learning}
    assert all(entry["checked"]["code"] == CHECKS[name].code for name, entry in listed.items())
