"""docs/seed_study.md cannot drift from the data: it is exactly what the generator writes from the committed JSON
files, every number in it is in them, and its verdicts follow the data (a claim is reproduced only when a run met
it)."""

from __future__ import annotations

import json
from pathlib import Path

from src.paths import CONFIG_DIR
from src.report import study_prose
from src.report.prose_numbers import numbers_in_prose

ROOT = CONFIG_DIR.parent
DATA = ROOT / "docs" / "seed_study2"
FIRST = ROOT / "docs" / "seed_study" / "study.json"
CONSTANTS = (100, 1e4, 370000, 180000, 30, 1e-3, 0.01)  # the post's criteria and horizons, the fixed-early step, 1%


def every_json() -> dict:
    return {str(p.relative_to(ROOT)): json.loads(p.read_text()) for p in [*DATA.glob("*.json"), FIRST]}


def test_the_committed_prose_is_the_generators_output(tmp_path: Path) -> None:
    written = study_prose.write_prose(DATA, FIRST, tmp_path / "seed_study.md")
    assert written.read_text() == (ROOT / "docs" / "seed_study.md").read_text(), \
        "docs/seed_study.md was edited by hand or the data changed: run python scripts/study_prose.py --prose-only"


def test_every_number_in_the_prose_is_in_the_data() -> None:
    missing = numbers_in_prose((ROOT / "docs" / "seed_study.md").read_text(), every_json(), allowed=CONSTANTS)
    assert missing == []


def long_run(block: str, steps: int, horizon: int, loss: float, meets: bool) -> dict:
    return {"block": block, "arm": "l1_1e-3", "seed": "0", "steps": steps, "horizon": horizon, "status": "FINISHED",
            "max_objective_avg": loss, "meets_vanished": meets, "meets_exploded": False, "verdict": "healthy"}


def test_claim_two_is_reproduced_only_where_a_run_met_the_posts_criterion() -> None:
    done = long_run("long_l1_adam", 370000, 370000, 1.6, False)
    assert study_prose.claim_two([done])[0] == "**Not reproduced**"
    assert study_prose.claim_two([{**done, "steps": 1000}])[0] == "**Not reproduced** (as far as the runs got)"
    vanished = long_run("long_l1_adam", 370000, 370000, 250.0, True)
    assert study_prose.claim_two([done, vanished])[0] == "**Reproduced in 1 of 2 runs**"
    assert study_prose.claim_two([])[0] == "**Not run**"


def bn_run(strength: float, first: float, top: float, spikes: int, verdict: str = "healthy") -> dict:
    return {"lambda": strength, "effective_lr_first": first, "effective_lr_max": top, "effective_lr_rise": top / first,
            "spikes": spikes, "verdict": verdict}


def test_the_mechanism_is_called_raised_and_unstable_only_from_the_runs() -> None:
    quiet = [bn_run(0, 1e-3, 1e-3, 2), bn_run(5e-3, 1e-3, 1.5e-3, 1)]
    assert study_prose.mechanism_verdict(quiet).startswith("**Not raised**")
    assert "**no instability**" in study_prose.mechanism_verdict(quiet)
    spiky = [bn_run(0, 1e-3, 1e-3, 2), bn_run(5e-3, 1e-3, 8e-3, 9)]
    assert study_prose.mechanism_verdict(spiky).startswith("**Raised** (η/‖W‖² ×8")
    assert "**instability**" in study_prose.mechanism_verdict(spiky)
    assert "**instability**" in study_prose.mechanism_verdict([bn_run(5e-3, 1e-3, 1e-3, 0, "divergence")])
