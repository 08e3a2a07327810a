"""The lowest floor: how settings are declared and checked, and the user-error base class.

Imports nothing of the project (a test holds it so), so models, data modules, regularizers and the
monitor can declare their settings here without reaching up:

- `types.py`: constrained types for signatures (`strength: NonNegativeFloat = 1e-4`);
- `signature.py`: the schema of a callable read from its signature, and `@checked` for direct calls;
- `wording.py`: problems in words, `<key>=<value> is not allowed; it must be <...>`;
- `errors.py`: `UserError` (exit status 2, its message alone) and `ConfigError`.

Validation of a whole composed config, across groups, lives at the top, in `src/config/`.
"""

from src.settings.errors import ConfigError, UserError

__all__ = ["ConfigError", "UserError"]
