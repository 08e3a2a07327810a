"""Schemas of config nodes, built from the signature of the callable a node configures, or written by hand.

Our own builders, data modules, regularizers and the monitor declare their settings in their
signatures (`strength: NonNegativeFloat = 1e-4`); `signature_schema` reads them, following a
class's `**kwargs` up its bases while the class passing them on is ours (not an installed package
nor the standard library: `src/`, a test, a copied template), and
`**kwargs: Unpack[SomeTypedDict]` adds that TypedDict's keys. A third-party callable gives its
argument names only (its annotations are not ours to enforce); `Schema.declare` lays hand-written
constraints over them. `checked` validates direct Python calls with the same schema, so a builder
called from a notebook refuses what the config would.
"""

from __future__ import annotations

import functools
import inspect
import os
import sys
import sysconfig
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NotRequired, Required, TypeVar, Unpack, get_args, get_origin, get_type_hints

from pydantic import ConfigDict, TypeAdapter, ValidationError
from typing_extensions import TypedDict  # pydantic needs this one before Python 3.12 (it depends on it)

from src.settings.errors import ConfigError
from src.settings.wording import explain, unknown

STRICT = ConfigDict(strict=True, extra="forbid", arbitrary_types_allowed=True)
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Schema:
    """The settings of one config node: each declared key's annotation, the keys without a default, and
    the names accepted at all (None = any: `**kwargs` that go on to third-party code)."""

    name: str
    fields: Mapping[str, Any]
    required: frozenset[str] = frozenset()
    accepted: frozenset[str] | None = None

    def declare(self, fields: Mapping[str, Any]) -> Schema:
        """This schema with (hand-written) annotations for some of its keys."""
        accepted = None if self.accepted is None else self.accepted | set(fields)
        return replace(self, fields={**self.fields, **fields}, accepted=accepted)

    def without(self, *keys: str) -> Schema:
        accepted = None if self.accepted is None else self.accepted - set(keys)
        fields = {k: v for k, v in self.fields.items() if k not in keys}
        return replace(self, fields=fields, accepted=accepted)

    @functools.cached_property
    def adapter(self) -> TypeAdapter:
        """A strict pydantic validator of the declared keys (built on first use)."""
        spec = {k: (Required if k in self.required else NotRequired)[v] for k, v in self.fields.items()}
        settings = TypedDict(self.name, spec)  # type: ignore[misc]
        settings.__pydantic_config__ = STRICT
        return TypeAdapter(settings)

    def problems(self, values: Mapping[str, Any], prefix: str = "", elsewhere: Collection[str] = (),
                 partial: bool = False) -> list[str]:
        """One line per problem of `values`; `elsewhere`: keys present but checked apart (or unresolvable
        here); `partial`: a `_partial_` node, whose missing arguments come at call time."""
        names = self.accepted
        strangers = [] if names is None else [k for k in [*values, *elsewhere] if k not in names]
        lines = [unknown(prefix + k, self.name, names) for k in strangers]
        declared = {k: v for k, v in values.items() if k in self.fields}
        try:
            self.adapter.validate_python(declared)
        except ValidationError as err:
            skip = set(self.fields) if partial else set(elsewhere)
            lines += explain(err, declared, self.fields, prefix, ignore_missing=skip)
        return lines


def typed_dict_schema(settings: type, name: str) -> Schema:
    """A hand-written schema (a TypedDict: key -> annotation)."""
    hints = get_type_hints(settings, include_extras=True)
    return Schema(name, hints, frozenset(getattr(settings, "__required_keys__", ())), frozenset(hints))


INSTALLED = tuple(str(Path(sysconfig.get_paths()[key]).resolve()) + os.sep
                  for key in ("stdlib", "platstdlib", "purelib", "platlib"))  # the standard library, installed packages


def _ours(obj: Any) -> bool:
    """Is `obj` the project's or a user's own code (`src/`, a test, a copied template, a notebook)? Its
    annotations are then enforced. Installed packages and the standard library give their argument names
    only: their annotations are not ours to enforce."""
    name = str(getattr(obj, "__module__", None))
    if name.startswith("src."):  # the project itself, wherever it is installed
        return True
    module = sys.modules.get(name)
    path = getattr(module, "__file__", None)
    if path is None:  # defined at an interactive prompt (ours), or a builtin (not)
        return getattr(module, "__name__", "") == "__main__"
    return not str(Path(path).resolve()).startswith(INSTALLED)


def _parameters(fn: Callable[..., Any], ours: bool) -> list[inspect.Parameter] | None:
    try:
        return list(inspect.signature(fn, eval_str=ours).parameters.values())
    except (TypeError, ValueError, NameError):
        return None


@functools.cache
def signature_schema(target: Callable[..., Any]) -> Schema:
    """The settings a function or class takes, from its signature (see the module docstring)."""
    name = target.__qualname__.removesuffix(".__init__")
    classes = inspect.getmro(target) if inspect.isclass(target) else ()
    chain = [c.__init__ for c in classes if "__init__" in vars(c)] or [target]
    fields: dict[str, Any] = {}
    required: set[str] = set()
    for fn in chain:
        ours = _ours(fn)
        params = _parameters(fn, ours)
        if params is None:
            break
        for p in params:
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self" and p.name not in fields:
                fields[p.name] = p.annotation if ours and p.annotation is not p.empty else Any
                if p.default is p.empty:
                    required.add(p.name)
        kwargs = next((p for p in params if p.kind is p.VAR_KEYWORD), None)
        if kwargs is None:
            return Schema(name, fields, frozenset(required), frozenset(fields))
        if get_origin(kwargs.annotation) is Unpack:
            fields.update(get_type_hints(get_args(kwargs.annotation)[0], include_extras=True))
            return Schema(name, fields, frozenset(required), frozenset(fields))
        if not ours:
            break
    return Schema(name, fields, frozenset(required), None)


def _plain(value: Any) -> Any:
    """A config's list or mapping (Hydra hands them to a target as OmegaConf containers) as plain Python,
    so that `list[int]` accepts `[1, 2]` however it came; the call itself still gets the original."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    return OmegaConf.to_container(value, resolve=True) if isinstance(value, DictConfig | ListConfig) else value


def checked(prefix: str) -> Callable[[F], F]:
    """Validate a builder's or constructor's arguments against its own signature, as the config is:
    `@checked("model")` on `vgg19` makes `vgg19(width=0)` raise `ConfigError('model.width=0 is not allowed; ...')`.
    `**kwargs` handed on to a base class are checked there."""

    def decorate(fn: F) -> F:
        signature = inspect.signature(fn)
        open_ended = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            strangers = {} if open_ended else {k: v for k, v in kwargs.items() if k not in signature.parameters}
            values: dict[str, Any] = dict(strangers)  # reported as "is not a setting of", not as a TypeError
            bound = signature.bind(*args, **{k: v for k, v in kwargs.items() if k not in strangers})
            for key, value in bound.arguments.items():
                kind = signature.parameters[key].kind
                if kind is inspect.Parameter.VAR_KEYWORD:
                    values.update(value)
                elif kind is not inspect.Parameter.VAR_POSITIONAL and key != "self":
                    values[key] = value
            lines = signature_schema(fn).problems({k: _plain(v) for k, v in values.items()}, f"{prefix}.")
            if lines:
                raise ConfigError("\n".join(lines))
            return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate
