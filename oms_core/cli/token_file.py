"""Where the ``oms`` CLI keeps the session token between commands.

The token is a bearer credential (whoever holds it acts as the user until it times out),
so the file is 0600 in a 0700 directory, written atomically, and removed on logout.
"""

from __future__ import annotations

import os
from pathlib import Path

from mpcnode.state.atomic_file import write_private
from oms_core.oms_core_errors import OmsCoreError


class TokenFileError(OmsCoreError):
    """No usable session token: the user must log in (again)."""


def default_token_path() -> Path:
    return Path.home() / ".oms" / "token"


def save_token(path: Path, token: str) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_private(path, token.encode("ascii") + b"\n")


def load_token(path: Path) -> str:
    try:
        mode = os.stat(path).st_mode & 0o777
        token = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        raise TokenFileError(f"not logged in (no session token at {path}); run "
                             "'oms login' first") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TokenFileError(f"cannot read the session token {path}: {exc}") from None
    if mode & 0o077:
        raise TokenFileError(f"{path} may be read by other users (mode {mode:04o}); delete "
                             "it and log in again")
    if not token:
        raise TokenFileError(f"{path} is empty; run 'oms login' first")
    return token


def remove_token(path: Path) -> None:
    path.unlink(missing_ok=True)
