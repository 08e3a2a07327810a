"""Checks on a composed config that must pass before anything trains or any run is created.

Each node is checked by one schema (`src/settings/signature.py`), chosen by its `_target_`: for a
third-party target, the hand-written one (`optim.py`, `sched.py`, `trainer.py`, `callbacks.py`)
laid over the target's own argument names; for ours, its signature (ours: any code that is not an
installed package, so a test's injected callback or a copied template is checked by its annotations).
Values are checked resolved; one that resolves only inside a Hydra run (`${hydra:runtime.output_dir}`)
is skipped outside one. When every value is allowed, the checks across keys run (`src/config/checks.py`).

A failure is one `ConfigError`, one line per problem, each naming the key, its value and what is allowed.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator
from typing import Any, NamedTuple

from hydra.utils import get_object
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from src.config.root import Logger, Paths, Root
from src.settings import ConfigError
from src.settings.signature import Schema, signature_schema, typed_dict_schema

TARGET_GROUPS = ("data", "model", "optim", "sched", "monitor", "trainer")  # one node each (none: sched=none)
COLLECTIONS = {"reg": "regularizer", "callbacks": "callback"}  # named nodes, any number: reg=[l2,dropout]
PLAIN_GROUPS = {"logger": typed_dict_schema(Logger, "logger"), "paths": typed_dict_schema(Paths, "paths")}
GROUPS = (*TARGET_GROUPS, *COLLECTIONS, *PLAIN_GROUPS, "hydra")
ROOT = typed_dict_schema(Root, "the root config").declare(dict.fromkeys(GROUPS, Any))
RESERVED = {"model": {"dropout": "the dropout regularizer sets it (reg=dropout reg.dropout.p=...)",
                      "dropout_placement": "the dropout regularizer sets it (reg=dropout reg.dropout.placement=...)"}}


@functools.cache
def third_party_schemas() -> dict[Any, Schema]:
    """Hand-written schemas by target object, so `torch.optim.sgd.SGD` finds the one of `torch.optim.SGD`."""
    from src.config import callbacks, optim, sched, trainer

    schemas = {}
    for name, settings in {**optim.SCHEMAS, **sched.SCHEMAS, **trainer.SCHEMAS, **callbacks.SCHEMAS}.items():
        target = get_object(name)
        schemas[target] = signature_schema(target).declare(typed_dict_schema(settings, target.__name__).fields)
    return schemas


def schema_of(target: Any) -> Schema:
    return third_party_schemas().get(target) or signature_schema(target)


def settings_of(node: DictConfig, skip: tuple[str, ...] = ()) -> tuple[dict, dict[str, DictConfig], dict[str, str]]:
    """A node's setting values (resolved), its nested `_target_` nodes, and why some values do not resolve."""
    values, nested, unresolved = {}, {}, {}
    for key in node:
        if key in skip or str(key).startswith("_") and str(key).endswith("_"):  # _target_, _partial_, ...
            continue
        try:
            child = node[key]
            if isinstance(child, DictConfig) and "_target_" in child:
                nested[key] = child
            elif isinstance(child, (DictConfig, ListConfig)):
                values[key] = OmegaConf.to_container(child, resolve=True)
            else:
                values[key] = child
        except OmegaConfBaseException as err:
            unresolved[key] = str(err).splitlines()[0]
    return values, nested, unresolved


class Node(NamedTuple):
    """A config node and the schema that checks it; `skip`: keys checked apart (the root's groups)."""

    prefix: str  # "optim.", "" for the root
    node: DictConfig
    schema: Schema
    skip: tuple[str, ...] = ()


def target_nodes(path: str, node: DictConfig) -> Iterator[Node | str]:
    """A `_target_` node with its schema (or why it has none), then its nested `_target_` nodes."""
    try:
        target = get_object(node._target_)
    except Exception as err:  # noqa: BLE001 - Hydra wraps import errors in several types
        yield f"{path}._target_={node._target_!r} cannot be imported ({type(err).__name__})"
        return
    reserved = RESERVED.get(path, {})
    yield from (f"{path}.{key} is not a setting of the {path} config; {why}" for key, why in reserved.items()
                if key in node)
    yield Node(f"{path}.", node, schema_of(target).without(*reserved), tuple(reserved))
    for key, child in settings_of(node)[1].items():
        yield from target_nodes(f"{path}.{key}", child)


def nodes(cfg: DictConfig) -> Iterator[Node | str]:
    """Every node of `cfg` with its schema, in config order; a string where a node cannot have one."""
    yield Node("", cfg, ROOT, skip=GROUPS)
    for group in TARGET_GROUPS:
        node = cfg.get(group)
        if node and "_target_" not in node:
            yield f"{group} has settings but no _target_; choose an option of the {group} group"
        elif node:
            yield from target_nodes(group, node)
    for group, kind in COLLECTIONS.items():
        for name, node in (cfg.get(group) or {}).items():
            if isinstance(node, DictConfig) and "_target_" in node:
                yield from target_nodes(f"{group}.{name}", node)
            else:
                yield f"{group}.{name} is not a {kind} config (no _target_); choose options of the {group} group"
    for group, schema in PLAIN_GROUPS.items():
        if isinstance(cfg.get(group), DictConfig):
            yield Node(f"{group}.", cfg[group], schema)


def setting_problems(cfg: DictConfig, in_hydra_run: bool = False) -> Iterator[str]:
    """Every key that is no setting and every value that is not allowed, in config order. A value that does
    not resolve is a problem inside a Hydra run; outside one (`${hydra:...}`) it is skipped."""
    for item in nodes(cfg):
        if isinstance(item, str):
            yield item
            continue
        values, nested, unresolved = settings_of(item.node, item.skip)
        if in_hydra_run:
            yield from (f"{item.prefix}{key} cannot be resolved ({why})" for key, why in unresolved.items())
        partial = bool(item.node.get("_partial_", False))
        yield from item.schema.problems(values, item.prefix, [*nested, *unresolved], partial=partial)


def validate(cfg: DictConfig) -> None:
    """Raise one ConfigError listing every problem of `cfg`; else log the warnings of `checks.WARNINGS`."""
    from hydra.core.hydra_config import HydraConfig

    from src.config.checks import cross_key_problems, cross_key_warnings

    errors = list(setting_problems(cfg, in_hydra_run=HydraConfig.initialized()))
    if not errors:  # the checks across keys assume each value is allowed
        errors = cross_key_problems(cfg)
    if errors:
        raise ConfigError("invalid config:\n  " + "\n  ".join(errors))
    for line in cross_key_warnings(cfg):
        logging.getLogger(__name__).warning("%s", line)
