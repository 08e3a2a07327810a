"""The monitor's keyword settings that come from registries: one stop policy per detector kind, and the limits.

`on_<kind>` exists for every detector in the registry (`detectors/__init__.py::DETECTORS`), with that
detector's `default_policy`; the schema the config is validated against (`src/settings/signature.py` reads
`**settings: Unpack[MonitorSettings]`) is generated from the same registry, so a new detector gets its
policy setting without another list to edit, and a policy can never land on another kind by position.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, TypedDict, get_type_hints

from src.monitor.detectors import DETECTORS
from src.monitor.thresholds import Thresholds

Policy = Literal["stop", "continue"]

POLICY_DEFAULTS: dict[str, str] = {f"on_{d.kind}": d.default_policy for d in DETECTORS}

# The keyword arguments of the monitor beyond its own parameters: `on_<kind>` and the fields of `Thresholds`
MonitorSettings = TypedDict(  # type: ignore[misc]
    "MonitorSettings",
    {**dict.fromkeys(POLICY_DEFAULTS, Policy), **get_type_hints(Thresholds, include_extras=True)},
    total=False,
)


def split_settings(settings: Mapping[str, Any]) -> tuple[dict[str, str], Thresholds]:
    """({kind: policy} for every registered kind, the `Thresholds`) from the monitor's keyword settings.

    Raises:
        TypeError: a key that is neither `on_<kind>` of a registered detector nor a field of `Thresholds`
            (a direct Python call; the config's validation names the key before that).
    """
    fields = set(Thresholds.__dataclass_fields__)
    unknown = [k for k in settings if k not in POLICY_DEFAULTS and k not in fields]
    if unknown:
        raise TypeError(f"unknown monitor settings {unknown}; allowed: {sorted(POLICY_DEFAULTS)} and {sorted(fields)}")
    policies = {key[len("on_"):]: str(settings.get(key, default)) for key, default in POLICY_DEFAULTS.items()}
    return policies, Thresholds(**{k: v for k, v in settings.items() if k in fields})
