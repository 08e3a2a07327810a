"""Constrained types for declaring settings, shared by our signatures and the third-party schemas.

Validation is strict (`src/settings/signature.py`): an int is a number, but a bool is neither an int
nor a number and a string is never either. `Allowed("...")` inside an `Annotated` says in words what
a custom check accepts. No framework imports here: `src/models` uses these types.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, Field


@dataclass(frozen=True)
class Allowed:
    """What a type accepts, in words, for messages that end `it must be <text>`."""

    text: str


Number = Annotated[float, Field(allow_inf_nan=False)]  # a finite int or float
PositiveFloat = Annotated[Number, Field(gt=0)]
NonNegativeFloat = Annotated[Number, Field(ge=0)]
UnitInterval = Annotated[Number, Field(ge=0, le=1)]  # [0, 1]
Fraction = Annotated[Number, Field(ge=0, lt=1)]  # [0, 1): a share or a probability that leaves something
OpenFraction = Annotated[Number, Field(gt=0, lt=1)]  # (0, 1)
PositiveInt = Annotated[int, Field(ge=1)]
NonNegativeInt = Annotated[int, Field(ge=0)]
ClassCount = Annotated[int, Field(ge=2)]
Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]  # numpy's seed range
Text = Annotated[str, Field(pattern=r"\S"), Allowed("a non-empty string")]


def writable_dir(value: str | Path) -> str | Path:
    """A directory that exists and is writable, or can be created under a writable ancestor."""
    folder = Path(value).expanduser().absolute()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not (str(value).strip() and folder.is_dir() and os.access(folder, os.W_OK | os.X_OK)):
        raise ValueError("not a writable directory")
    return value


WritableDir = Annotated[
    str | Path, AfterValidator(writable_dir), Allowed("a directory this process can write (or create)")
]
