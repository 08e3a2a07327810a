"""`python -m bench.study_schedule`: bad settings are refused before any run starts; the table states the
overheads from the medians it was given."""

from __future__ import annotations

import pytest

from bench import study_schedule


@pytest.mark.parametrize("flags", [["--arm", "l9_1e-3"], ["--steps", "1500"], ["--rounds", "0"]])
def test_a_bad_setting_is_refused_before_any_run(flags: list[str], capsys: pytest.CaptureFixture,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(study_schedule, "run", lambda *a: pytest.fail("a run started"))
    with pytest.raises(SystemExit) as stop:
        study_schedule.main(flags)
    assert stop.value.code == 2 and flags[0] in capsys.readouterr().err


def test_the_table_gives_each_variant_against_the_run_without_instruments() -> None:
    result = {"block": "long_l1_adam", "arm": "l1_1e-3", "steps": 3000, "rounds": 1, "load_1min": [1.0],
              "ms_cpu_per_step": {"schedule": 6.3, "no instruments": 6.0, "no monitor": 5.0},
              "instruments_overhead": 0.05, "monitor_overhead": 0.26}
    text = study_schedule.table(result)
    assert "| schedule | 6.30 | 1.050 | 1.260 |" in text and "+5.0% CPU a step" in text and "+26.0%" in text
