"""Every slow test says which change must run it (`scripts/slow_tests.py`, used by `.ci/run`), and a
change selects the slow tests of the areas it touches."""

from __future__ import annotations

import re

from src.paths import PROJECT_ROOT
from tests.sweeps import load_script

slow_tests = load_script("slow_tests")
SLOW_MARK = re.compile(r"pytest\.mark\.slow\b")


def test_every_file_with_a_slow_test_declares_its_area() -> None:
    marked = {f"tests/{p.name}" for p in (PROJECT_ROOT / "tests").glob("test_*.py") if SLOW_MARK.search(p.read_text())}
    assert marked == set(slow_tests.AREAS), f"unlisted: {marked - set(slow_tests.AREAS)}; " \
                                            f"listed without a slow test: {set(slow_tests.AREAS) - marked}"


def test_a_change_selects_the_slow_tests_of_its_areas() -> None:
    assert slow_tests.selected(["docs/extending.md", "README.md"]) == []
    chaos = slow_tests.selected(["src/tracking/sweeps.py"])
    assert "tests/test_sweep_status.py" in chaos and "tests/test_vgg_init.py" not in chaos
    study = slow_tests.selected(["conf/experiment/study_vgg19_exploding.yaml"])
    assert "tests/test_study_blocks.py" in study and "tests/test_sweep_status.py" not in study
    assert slow_tests.selected(["tests/test_vgg_init.py"]) == ["tests/test_vgg_init.py"], "the test file itself"
    assert slow_tests.selected(["src/settings/types.py"]) == sorted(slow_tests.AREAS), "the floor: all of them"
