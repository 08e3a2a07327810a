"""Problems in words: `<key>=<value> is not allowed; it must be <what the key's annotation allows>`.

What is allowed is read from the declared annotation, never from pydantic's text for one failure,
so `optim.lr='abc'` and `optim.lr=0` both say "a number > 0".
"""

from __future__ import annotations

import difflib
import types
from collections.abc import Collection, Mapping
from typing import Annotated, Any, Literal, NotRequired, Required, Union, get_args, get_origin

from pydantic import ValidationError
from pydantic.fields import FieldInfo

from src.settings.types import Allowed

WORDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string", Any: "any value"}


def _metadata(items: tuple[Any, ...]) -> list[Any]:
    """Annotated's metadata with `Field(...)` opened into its constraints."""
    return [m for item in items for m in (item.metadata if isinstance(item, FieldInfo) else [item])]


def _num(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _bounds(metadata: list[Any]) -> str:
    """` > 0`, ` in [0, 1)`, ` >= 32 and a multiple of 4`: the numeric constraints of an annotation."""
    c = {k: getattr(m, k) for m in metadata for k in ("gt", "ge", "lt", "le", "multiple_of") if hasattr(m, k)}
    low = ("[", ">=", c["ge"]) if "ge" in c else ("(", ">", c["gt"]) if "gt" in c else None
    high = ("]", "<=", c["le"]) if "le" in c else (")", "<", c["lt"]) if "lt" in c else None
    if low and high:
        text = f" in {low[0]}{_num(low[2])}, {_num(high[2])}{high[0]}"
    else:
        text = "".join(f" {sign} {_num(value)}" for _, sign, value in filter(None, (low, high)))
    return text + (f" and a multiple of {c['multiple_of']}" if "multiple_of" in c else "")


def describe(annotation: Any) -> str:
    """What values an annotation allows, in words: `a number > 0`, `one of ['avg', 'max']`, `true or false`."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin in (Required, NotRequired):
        return describe(args[0])
    if origin is Annotated:
        metadata = _metadata(args[1:])
        said = next((m.text for m in metadata if isinstance(m, Allowed)), None)
        if said:
            return said
        length = {getattr(m, k) for m in metadata for k in ("min_length", "max_length") if hasattr(m, k)}
        if get_origin(args[0]) is list and len(length) == 1:
            return f"a list of {length.pop()} values, each {describe(get_args(args[0])[0])}"
        return describe(args[0]) + _bounds(metadata)
    if origin is Literal:
        return f"one of {list(args)}" if len(args) > 1 else repr(args[0])
    if origin in (Union, types.UnionType):
        text = " or ".join(describe(a) for a in args if a is not type(None))
        return text + " (or null)" if type(None) in args else text
    if origin is list:
        return f"a list of values, each {describe(args[0])}" if args else "a list"
    return WORDS.get(annotation, f"a {getattr(annotation, '__name__', annotation)}")


def unknown(key: str, owner: str, settings: Collection[str]) -> str:
    close = difflib.get_close_matches(key.rsplit(".", 1)[-1], settings, n=1, cutoff=0.75)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"{key} is not a setting of {owner}{hint}; its settings are {sorted(settings)}"


def explain(error: ValidationError, values: Mapping[str, Any], fields: Mapping[str, Any], prefix: str,
            ignore_missing: Collection[str] = ()) -> list[str]:
    """One line per key that `error` (from validating `values` against `fields`) finds fault with."""
    lines: dict[str, str] = {}
    for e in error.errors():
        key = str(e["loc"][0]) if e["loc"] else ""
        if key in lines or key not in fields:
            continue
        if e["type"] == "missing":
            if key not in ignore_missing:
                lines[key] = f"{prefix}{key} is missing; it must be {describe(fields[key])}"
        else:
            lines[key] = f"{prefix}{key}={values.get(key)!r} is not allowed; it must be {describe(fields[key])}"
    return list(lines.values())
