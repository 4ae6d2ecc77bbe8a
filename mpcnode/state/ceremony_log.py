"""Each key's ceremony sessions as this node finished them: what its closing record signs.

One file per key, ``ceremony/<key id hex>.json`` under the node's data directory, holding
canonical JSON ``{"sessions": [[protocol, session id hex], ...]}``; each finished keygen,
aux-info or refresh session is appended with one atomic write. The list is public (the
session ids are in every transcript), so it is written in the clear.
"""

from __future__ import annotations

import threading
from pathlib import Path

from mpcnode.core.canonical_json import CanonicalJSONError, canonical_json, parse_json
from mpcnode.core.errors import MpcnodeError
from mpcnode.state.atomic_file import write_atomic
from mpcnode.transport.ceremony_closing import SessionRef

LOG_DIR = "ceremony"


class CeremonyLogError(MpcnodeError):
    """A ceremony log file that is not what this module writes."""


class CeremonyLog:
    def __init__(self, data_dir: Path) -> None:
        self._dir = data_dir / LOG_DIR
        self._lock = threading.Lock()

    def _path(self, key_id: bytes) -> Path:
        return self._dir / f"{key_id.hex()}.json"

    def sessions(self, key_id: bytes) -> tuple[SessionRef, ...]:
        """The key's ceremony sessions, in the order they finished here (none: empty)."""
        path = self._path(key_id)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return ()
        try:
            doc = parse_json(raw, floats=False)
        except CanonicalJSONError as exc:
            raise CeremonyLogError(f"{path}: {exc}") from None
        entries = doc.get("sessions") if isinstance(doc, dict) and len(doc) == 1 else None
        if not isinstance(entries, list) or not all(
                isinstance(e, list) and len(e) == 2 and all(isinstance(x, str) for x in e)
                for e in entries):
            raise CeremonyLogError(f"{path}: not a ceremony log")
        try:
            return tuple(SessionRef(p, bytes.fromhex(sid)) for p, sid in entries)
        except ValueError:
            raise CeremonyLogError(f"{path}: a session id is not hex") from None

    def append(self, key_id: bytes, session: SessionRef) -> None:
        with self._lock:
            sessions = (*self.sessions(key_id), session)
            self._dir.mkdir(mode=0o700, exist_ok=True)
            write_atomic(self._path(key_id), canonical_json(
                {"sessions": [[s.protocol, s.session_id.hex()] for s in sessions]},
                ascii_only=True))
