"""Hydra's composition errors as settings errors: one message naming the key and what is allowed, exit 2.

Hydra reports an unknown group option (`model=foo`) and a key that is not in the config
(`trainer.max_step=5`) itself, with exit status 1, and advises appending a misspelled key with
`+`. Before Hydra runs, `refuse_bad_composition` composes the same overrides with Hydra's Compose
API; of its errors it words these two:

- an unknown option of a group: the group's options, listed;
- a key the config lacks: composed again as `+key=value` and validated, so the message is the
  one every misspelled setting gets ("did you mean 'max_steps'?") and names the allowed keys.

Anything else (or a command line with flags other than `-m`/`--multirun`) is left to Hydra, and
in a multirun only the overrides that do not sweep are composed.
"""

from __future__ import annotations

import re
import sys

from omegaconf import DictConfig

from src.paths import CONFIG_DIR
from src.settings import ConfigError

MULTIRUN_FLAGS = ("-m", "--multirun")


def overrides_to_check(argv: list[str]) -> list[list[str]]:
    """The override lists the pre-check composes: the command line's, or in a multirun one per value of
    each swept key (the others as given); [] when the command line has other flags."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    flags = [a for a in argv if a.startswith("-")]
    if any(flag not in MULTIRUN_FLAGS for flag in flags):
        return []
    lines = [a for a in argv if not a.startswith("-")]
    if not flags:
        return [lines]
    try:
        parsed = OverridesParser.create().parse_overrides(lines)
    except Exception:  # noqa: BLE001 - Hydra words a syntax error itself
        return []
    fixed = [line for line, override in zip(lines, parsed, strict=True) if not override.is_sweep_override()]
    out = [fixed]
    for override in parsed:
        if override.is_sweep_override():
            try:
                values = list(override.sweep_string_iterator())
            except Exception:  # noqa: BLE001 - a sweep the iterator cannot list (an interval): Hydra's to check
                continue
            out += [[*fixed, f"{override.get_key_element()}={value}"] for value in values]
    return out


def compose(overrides: list[str]) -> DictConfig:
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return hydra_compose("train", overrides=overrides)


def unknown_key_problem(key: str, overrides: list[str]) -> str:
    """The settings error of a key the config lacks, from the validation of `+key=value`."""
    from src.config import validate

    line = next(o for o in overrides if o.split("=", 1)[0].lstrip("~") == key)
    try:
        validate(compose([f"+{o}" if o is line else o for o in overrides]))
    except ConfigError as err:
        return str(err)
    except Exception:  # noqa: BLE001 - fall back to the plain wording below
        pass
    return (f"invalid config:\n  {key} is not a key of the config; check its spelling (a key the config does not "
            f"have is added on purpose with +{line})")


def composition_problem(overrides: list[str]) -> str | None:
    """The settings error the overrides' composition raises (see the module docstring), or None."""
    from hydra.errors import ConfigCompositionException, MissingConfigException
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError

    try:
        compose(overrides)
    except MissingConfigException as err:
        group, _, option = (err.missing_cfg_file or "").rpartition("/")
        if not group or not err.options:
            return None
        return (f"invalid config:\n  {group}={option} is not an option of the '{group}' group; its options are "
                f"{', '.join(sorted(err.options))}")
    except ConfigCompositionException as err:
        found = re.match(r"Could not override '([^']+)'", str(err))
        if found and isinstance(err.__cause__, ConfigKeyError | ConfigAttributeError):
            return unknown_key_problem(found.group(1), overrides)
    except Exception:  # noqa: BLE001 - whatever else Hydra says for itself
        return None
    return None


def refuse_bad_composition(argv: list[str]) -> None:
    """Exit 2 with the message of `composition_problem` for these command-line arguments; else return."""
    for overrides in overrides_to_check(argv):
        problem = composition_problem(overrides)
        if problem:
            print(problem, file=sys.stderr)
            raise SystemExit(2)
