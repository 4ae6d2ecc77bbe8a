"""Exit status of every ``oms`` command, and the one line a failure prints on stderr.

0 done; 1 the OMS refused or failed (e.g. ``PolicyDenied: rule "trader-daily": …``);
2 the command could not run (arguments, files).
"""

from __future__ import annotations

import sys

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_UNUSABLE = 2


def one_line(exc: BaseException) -> str:
    """``Type: message`` on one line, whatever the message holds."""
    return " ".join(f"{type(exc).__name__}: {exc}".splitlines())


def fail(message: str, status: int) -> int:
    print(message, file=sys.stderr)
    return status
