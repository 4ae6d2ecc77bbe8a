"""What the OMS stores need from the audit log, so they can be tested without it.

``oms_core.audit.log.AuditLog`` satisfies this protocol. ``append`` must write through the
caller's connection and never commit: the entry then commits, or rolls back, with the state
change it records (DESIGN §5).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from typing import Protocol


class AuditSink(Protocol):
    """Appends one audit entry inside the caller's open transaction."""

    def append(self, conn: sqlite3.Connection, *, actor: str, action: str, subject: str,
               details: Mapping[str, object], at: float) -> object:
        """Record that ``actor`` did ``action`` to ``subject`` at ``at``; does not commit."""
        ...
