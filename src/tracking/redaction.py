"""Keep credentials out of what a run records or prints.

- `redact_uri` strips the user:password part of a URI (`http://u:p@host` -> `http://***@host`).
- `scrub` hides values whose key names a secret (token, password, api_key, ...) and values equal
  to a secret-named environment variable, and redacts URI credentials inside any string.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

REDACTED = "***"
SECRET_NAME = re.compile(r"(token|secret|passw(or)?d|api[_-]?key|credential|auth|private[_-]?key)", re.IGNORECASE)
URI_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/@\s]+)@")


def redact_uri(text: str) -> str:
    """Every `scheme://user:pass@` in `text` becomes `scheme://***@`."""
    return URI_USERINFO.sub(lambda m: f"{m['scheme']}{REDACTED}@", text)


def secret_env_values(environ: Mapping[str, str] | None = None) -> set[str]:
    """Values of environment variables whose names say they are secrets (4+ characters, to avoid noise)."""
    environ = os.environ if environ is None else environ
    return {v for k, v in environ.items() if SECRET_NAME.search(k) and len(v) >= 4}


def scrub_value(key: str, value: str, secrets: set[str]) -> str:
    if SECRET_NAME.search(key.rsplit(".", 1)[-1]):
        return REDACTED
    for secret in secrets:
        if secret in value:
            value = value.replace(secret, REDACTED)
    return redact_uri(value)


def scrub(items: Mapping[str, str]) -> dict[str, str]:
    """A copy of `items` (params or tags) that is safe to log."""
    secrets = secret_env_values()
    return {k: scrub_value(k, str(v), secrets) for k, v in items.items()}


def scrub_overrides(overrides: list[str]) -> list[str]:
    """Hydra overrides (`key=value`) with secret values hidden."""
    secrets = secret_env_values()
    out = []
    for item in overrides:
        key, sep, value = item.partition("=")
        out.append(f"{key}{sep}{scrub_value(key, value, secrets)}" if sep else redact_uri(item))
    return out


def scrub_tree(data: object, key: str = "", secrets: set[str] | None = None) -> object:
    """A nested dict/list (a resolved config) with the same redactions applied to every string leaf."""
    secrets = secret_env_values() if secrets is None else secrets
    if isinstance(data, Mapping):
        return {k: scrub_tree(v, str(k), secrets) for k, v in data.items()}
    if isinstance(data, list):
        return [scrub_tree(v, key, secrets) for v in data]
    if isinstance(data, str) or SECRET_NAME.search(key):
        return scrub_value(key, str(data), secrets)
    return data
