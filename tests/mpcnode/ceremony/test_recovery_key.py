"""Recovery key files: the private half opens only with its passphrase, is 0600 and never
overwritten; the public half is what backups are encrypted to."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from mpcnode.ceremony.recovery_key import (
    RecoveryKeyError,
    load_recovery_private,
    load_recovery_public,
    new_recovery_key,
)
from mpcnode.ceremony.share_backup import raw_public

PASSPHRASE = b"a long recovery passphrase"


def test_a_new_key_pair_round_trips(tmp_path: Path) -> None:
    private, public = tmp_path / "r.key", tmp_path / "r.pub"
    raw = new_recovery_key(private, public, PASSPHRASE)
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert PASSPHRASE not in private.read_bytes()
    assert raw_public(load_recovery_public(public)) == raw
    assert raw_public(load_recovery_private(private, PASSPHRASE).public_key()) == raw


def test_a_wrong_passphrase_opens_nothing_and_is_not_echoed(tmp_path: Path) -> None:
    private = tmp_path / "r.key"
    new_recovery_key(private, tmp_path / "r.pub", PASSPHRASE)
    with pytest.raises(RecoveryKeyError, match="does not open") as err:
        load_recovery_private(private, b"wrong passphrase!")
    assert "wrong passphrase!" not in str(err.value)


def test_a_key_is_never_overwritten_nor_made_with_a_short_passphrase(tmp_path: Path) -> None:
    private, public = tmp_path / "r.key", tmp_path / "r.pub"
    new_recovery_key(private, public, PASSPHRASE)
    before = private.read_bytes()
    with pytest.raises(RecoveryKeyError, match="refusing to overwrite"):
        new_recovery_key(private, tmp_path / "s.pub", PASSPHRASE)
    assert private.read_bytes() == before
    with pytest.raises(RecoveryKeyError, match="at least 12 bytes"):
        new_recovery_key(tmp_path / "t.key", tmp_path / "t.pub", b"short")


def test_a_file_of_another_kind_is_refused(tmp_path: Path) -> None:
    bogus = tmp_path / "x.pub"
    bogus.write_text("not a key")
    with pytest.raises(RecoveryKeyError, match="not a PEM public key"):
        load_recovery_public(bogus)


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o666])
def test_a_private_key_readable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    """A careless operator's chmod (or a copy made with a loose umask) exposed the
    encrypted key to offline guessing: it is refused before the passphrase is tried."""
    private = tmp_path / "r.key"
    new_recovery_key(private, tmp_path / "r.pub", PASSPHRASE)
    private.chmod(mode)
    with pytest.raises(RecoveryKeyError, match=f"accessible by group or others "
                                               f"\\(mode {mode:04o}\\)"):
        load_recovery_private(private, PASSPHRASE)
    private.chmod(0o600)
    assert load_recovery_private(private, PASSPHRASE)
