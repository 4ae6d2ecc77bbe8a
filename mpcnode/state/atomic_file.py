"""Atomic, durable file writes: a reader, or the file after a crash, holds the old content or
the new, never a mix, and a finished write survives a power cut.

The one recipe, for every file the project writes that matters (sealed key shares, keys and
certificates, configs, policy bundles, transcripts, prime pools, tokens): a temp file in the
same directory, created 0600 by ``mkstemp`` so a secret is never readable by others even
for an instant, set to its final mode, written and fsynced; then renamed over the target
(``write_atomic``) or hard-linked to a name that must not exist yet (``write_new``); then
the directory fsynced, so that the new name is on disk too. The temp file never outlives
the call.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

PRIVATE = 0o600
"""Secrets: keys, passphrases, tokens, sealed blobs, prime pools."""

PUBLIC = 0o644
"""Certificates, configs, policy bundles, transcripts."""


def write_atomic(path: Path, data: bytes, mode: int = PRIVATE) -> None:
    """Replace ``path`` (or create it) with ``data``, all or nothing."""
    tmp = _write_temp(path, data, mode)
    try:
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def write_new(path: Path, data: bytes, mode: int = PRIVATE) -> bool:
    """Create ``path`` with ``data``, all or nothing, unless it exists: then leave it (another
    process won the race, or the caller must not overwrite) and return False."""
    tmp = _write_temp(path, data, mode)
    try:
        os.link(tmp, path)  # unlike rename, link never replaces an existing file
    except FileExistsError:
        return False
    finally:
        os.unlink(tmp)
    fsync_dir(path.parent)
    return True


def write_private(path: Path, data: bytes) -> None:
    """``write_atomic`` of a secret: mode 0600."""
    write_atomic(path, data, PRIVATE)


def write_public(path: Path, data: bytes) -> None:
    """``write_atomic`` of a public file: mode 0644."""
    write_atomic(path, data, PUBLIC)


def _write_temp(path: Path, data: bytes, mode: int) -> str:
    """A fully written and fsynced temp file beside ``path``; returns its name."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        os.unlink(tmp)
        raise
    return tmp


def fsync_dir(directory: Path) -> None:
    """Make a rename or a new entry in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
