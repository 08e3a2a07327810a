"""Rule types for config values: each knows whether a value is allowed and how to say what is.

Used by the rule table in `src/config/schema.py`; every failure reads
`<key>=<value> is not allowed; it must be <Rule.explain()>`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class Rule:
    """A predicate on one config value plus the words for what it accepts."""

    nullable: bool = False

    def accepts(self, value: Any) -> bool:
        return (value is None and self.nullable) or (value is not None and self.check(value))

    def check(self, value: Any) -> bool:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError

    def explain(self) -> str:
        return self.describe() + (" (or null)" if self.nullable else "")


@dataclass(frozen=True)
class Predicate(Rule):
    """Any test with its own words, for tables kept beside the code they guard (e.g. the regularizers')."""

    test: Callable[[Any], bool]
    what: str
    nullable: bool = False

    def check(self, value: Any) -> bool:
        return bool(self.test(value))

    def describe(self) -> str:
        return self.what


@dataclass(frozen=True)
class Int(Rule):
    """An integer within optional inclusive bounds."""

    min: int | None = None
    max: int | None = None
    nullable: bool = False

    def check(self, value: Any) -> bool:
        return _is_int(value) and (self.min is None or value >= self.min) and (self.max is None or value <= self.max)

    def describe(self) -> str:
        bounds = [f">= {self.min}"] * (self.min is not None) + [f"<= {self.max}"] * (self.max is not None)
        return "an integer" + (" " + " and ".join(bounds) if bounds else "")


@dataclass(frozen=True)
class Real(Rule):
    """A finite number (int or float) within optional bounds; `*_open` makes a bound strict."""

    min: float | None = None
    max: float | None = None
    min_open: bool = False
    max_open: bool = False
    nullable: bool = False

    def check(self, value: Any) -> bool:
        if not _is_number(value):
            return False
        if self.min is not None and (value <= self.min if self.min_open else value < self.min):
            return False
        return self.max is None or (value < self.max if self.max_open else value <= self.max)

    def describe(self) -> str:
        bounds = []
        if self.min is not None:
            bounds.append(f"{'>' if self.min_open else '>='} {self.min:g}")
        if self.max is not None:
            bounds.append(f"{'<' if self.max_open else '<='} {self.max:g}")
        return "a number" + (" " + " and ".join(bounds) if bounds else "")


@dataclass(frozen=True)
class Choice(Rule):
    """One of a fixed set of values."""

    options: tuple[Any, ...]
    nullable: bool = False

    def check(self, value: Any) -> bool:
        return any(value == o and type(value) is type(o) for o in self.options)

    def describe(self) -> str:
        return f"one of {list(self.options)}"


@dataclass(frozen=True)
class Bool(Rule):
    nullable: bool = False

    def check(self, value: Any) -> bool:
        return isinstance(value, bool)

    def describe(self) -> str:
        return "true or false"


@dataclass(frozen=True)
class Text(Rule):
    """A non-empty string."""

    nullable: bool = False

    def check(self, value: Any) -> bool:
        return isinstance(value, str) and bool(value.strip())

    def describe(self) -> str:
        return "a non-empty string"


@dataclass(frozen=True)
class Pair(Rule):
    """A list of exactly two values, each accepted by `item`."""

    item: Rule
    nullable: bool = False

    def check(self, value: Any) -> bool:
        return isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2 and all(
            self.item.accepts(v) for v in value
        )

    def describe(self) -> str:
        return f"a list of two values, each {self.item.describe()}"


@dataclass(frozen=True)
class AnyOf(Rule):
    """Accepted when any of `rules` accepts the value."""

    rules: tuple[Rule, ...]
    nullable: bool = False

    def check(self, value: Any) -> bool:
        return any(r.accepts(value) for r in self.rules)

    def describe(self) -> str:
        return " or ".join(r.explain() for r in self.rules)


def nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


@dataclass(frozen=True)
class WritableDir(Rule):
    """A directory that exists and is writable, or can be created under a writable ancestor."""

    nullable: bool = False

    def check(self, value: Any) -> bool:
        if not isinstance(value, str) or not value.strip():
            return False
        path = Path(value).expanduser().absolute()
        if path.exists():
            return path.is_dir() and os.access(path, os.W_OK | os.X_OK)
        ancestor = nearest_existing(path)
        return ancestor.is_dir() and os.access(ancestor, os.W_OK | os.X_OK)

    def describe(self) -> str:
        return "a directory this process can write (or create)"
