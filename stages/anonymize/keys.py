"""The pseudonymisation key: SYNTHGUARD_PSEUDONYM_KEY, else a key file outside version control.

The key file lives at `<project root>/.pseudonym_key` (git-ignored). The project root
is resolved through the temporary copies that `dvc exp run --temp/--queue` make under
`.dvc/tmp/exps/`, so those runs use the same key as the workspace. The key itself is
never printed, logged, written to data or sent to MLflow; only its location is shown.
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

from stages.errors import ParamsError

ENV_VAR = "SYNTHGUARD_PSEUDONYM_KEY"
KEY_FILE_NAME = ".pseudonym_key"
MIN_KEY_CHARS = 16


def default_key_file() -> Path:
    """`.pseudonym_key` in the project root (seen through DVC's experiment copies)."""
    from stages.tracking import project_root

    return project_root() / KEY_FILE_NAME


def _checked(text: str, where: str) -> bytes:
    text = text.strip()
    if len(text) < MIN_KEY_CHARS:
        raise ParamsError(
            f"the pseudonymisation key from {where} is shorter than {MIN_KEY_CHARS} characters; "
            f"use a long random value, e.g. `python -c 'import secrets; print(secrets.token_hex(32))'`"
        )
    return text.encode()


def load_key(key_file: Path | None = None, *, create: bool = True, notice=None) -> bytes:
    """The key from the environment, else from `key_file` (created with a notice on first use)."""
    if os.environ.get(ENV_VAR):
        return _checked(os.environ[ENV_VAR], f"${ENV_VAR}")
    path = Path(key_file) if key_file else default_key_file()
    if path.is_file():
        return _checked(path.read_text(encoding="utf-8"), str(path))
    if not create:
        raise ParamsError(f"no pseudonymisation key: set ${ENV_VAR} or create {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(secrets.token_hex(32) + "\n")
    print(
        f"anonymize: created a new pseudonymisation key in {path} (mode 600, git-ignored). Keep it secret and "
        f"back it up: pseudonyms and surrogates are reproducible only with the same key. ${ENV_VAR} overrides it.",
        file=notice or sys.stderr,
    )
    return _checked(path.read_text(encoding="utf-8"), str(path))
