"""TEST ONLY: a node that dies right after marking a presignature consumed.

Given to ``NodeStore(after_consume=...)``, ``crash`` ends the process between the
journal's fdatasync and the reply, as a power cut at the worst moment would; the crash
tests then check that the presignature stays used after a restart.
"""

from __future__ import annotations

import os

CRASH_EXIT_CODE = 137  # what a shell reports for a process killed by SIGKILL


def crash() -> None:
    """End the process at once: no cleanup, no flush, no reply."""
    os._exit(CRASH_EXIT_CODE)
