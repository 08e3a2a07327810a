"""The prose cannot drift from the data: every number written in a study text must be in `study.json`.

`numbers_in_prose(markdown, study_json)` finds each number in the text and returns those that match no
value of the data: no number of the JSON (any depth) and no number inside its formatted `text` strings.
A written number matches a value when they agree to the digits written (half a unit of its last digit:
"0.91" matches 0.9066, "7.0e12" matches 7.02e12, "45%" matches 0.449), sign ignored ("fell by 0.12"
matches −0.12).

Not checked, by design: numbers inside code (`l2_1e-3`, fenced blocks), link targets and image paths,
numbers that are part of a name (LeNet-5's 5 in `lenet5`, "L2", "VGG-19"), citation years ("Hanin 2018",
"et al. 2019"), list markers at a line's start, and integers below `min_integer` (10: seed counts and
small counts are in every table, so checking them proves nothing). Numbers the prose may use without the
data (a constant of a formula) are passed as `allowed`.
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Iterable
from typing import Any

NUMBER = re.compile(r"(?<![\w.])(?<![A-Za-z_][-−])([-+−]?)(\d+(?:\.\d+)?)(?:[eE]([-+−]?\d+))?(%?)(?![\w.]\d|[A-Za-z_])")
STRIP = [re.compile(p, re.S) for p in (r"```.*?```", r"`[^`]*`", r"\]\([^)]*\)", r"<!--.*?-->",
                                        r"(?:et al\.?,?|[A-Z][a-z]+,?)\s+(?:19|20)\d{2}[a-z]?\b",
                                        r"(?m)^\s*(?:\d+[.)]|#+)\s", r"\b[A-Za-z]+-\d+\b")]


SKIP_KEYS = {"run_ids", "run_id"}  # MLflow's hex ids: their digits are no numbers of the study


def _parse(sign: str, mantissa: str, exponent: str | None, percent: str) -> tuple[float, float]:
    """(|value|, tolerance): half a unit of the last digit written."""
    decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
    exp = int(exponent.replace("−", "-")) if exponent else 0
    value, tol = float(f"{mantissa}e{exp}"), 0.5 * float(f"1e{exp - decimals}")  # beyond a float: inf
    if percent:
        value, tol = value / 100, tol / 100
    return value, tol * (1 + 1e-9) + 1e-12


def _numbers_of(data: Any, out: list[float]) -> None:
    if isinstance(data, bool) or data is None:
        return
    if isinstance(data, (int, float)):
        if math.isfinite(data):
            out.append(abs(float(data)))
    elif isinstance(data, str):
        out.extend(v for v, _ in (_parse(*m.groups()) for m in NUMBER.finditer(data)) if math.isfinite(v))
    elif isinstance(data, dict):
        for key, value in data.items():
            if key not in SKIP_KEYS:
                _numbers_of(key, out)
                _numbers_of(value, out)
    elif isinstance(data, (list, tuple)):
        for value in data:
            _numbers_of(value, out)


def known_values(study_json: dict[str, Any]) -> list[float]:
    """Every number of the data, absolute, sorted."""
    out: list[float] = []
    _numbers_of(study_json, out)
    return sorted(out)


def prose_numbers(markdown: str, min_integer: int = 10) -> list[tuple[str, int, float, float]]:
    """(as written, line, |value|, tolerance) of each checked number of the text."""
    found = []
    for line_no, line in enumerate(markdown.splitlines(), 1):
        for pattern in STRIP:
            line = pattern.sub(" ", line)
        for m in NUMBER.finditer(line):
            value, tol = _parse(*m.groups())
            if "." not in m.group(2) and not m.group(3) and not m.group(4) and value < min_integer:
                continue
            found.append((m.group(0), line_no, value, tol))
    return found


def numbers_in_prose(markdown: str, study_json: dict[str, Any], allowed: Iterable[float] = (),
                     min_integer: int = 10) -> list[tuple[str, int]]:
    """The numbers of `markdown` that are not in `study_json` (nor in `allowed`): (as written, line)."""
    known = sorted([*known_values(study_json), *(abs(a) for a in allowed)])
    missing = []
    for text, line, value, tol in prose_numbers(_strip_code_text(markdown), min_integer):
        i = bisect.bisect_left(known, value - tol)
        if i == len(known) or known[i] > value + tol:
            missing.append((text, line))
    return missing


def _strip_code_text(markdown: str) -> str:
    """Fenced blocks span lines: removed before the text is read line by line."""
    return re.sub(r"```.*?```", lambda m: "\n" * m.group(0).count("\n"), markdown, flags=re.S)
