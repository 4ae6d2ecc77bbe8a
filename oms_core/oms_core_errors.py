"""The root of every exception class of ``oms_core``.

Each part keeps its own typed errors (``OmsError`` for users, sessions and requests,
``AuditError``, ``NodeManagerError`` …); they all derive from ``OmsCoreError``, so a caller
can tell an OMS failure from a bug in one ``except``. The gRPC server still maps each type
to its own status (``oms_core.daemon.rpc_status``).
"""

from __future__ import annotations


class OmsCoreError(Exception):
    """Root of every error raised by ``oms_core``."""
