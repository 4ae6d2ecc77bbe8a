"""Sealing of node secrets: AES-256-GCM blobs, scrypt KEK, salt, passphrase sources, KCV."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from mpcnode.state import seal
from mpcnode.state.seal import (
    PassphraseError,
    Sealer,
    SealError,
    load_or_create_salt,
    passphrase_from_env_or_file,
)

FAST_N = 2**10  # tests only: the production cost is seal.SCRYPT_N
SALT = bytes(range(16))


def fast_sealer(passphrase: bytes = b"correct horse", salt: bytes = SALT) -> Sealer:
    return Sealer.from_passphrase(passphrase, salt, n=FAST_N)


def test_round_trip_and_blob_layout() -> None:
    s = fast_sealer()
    blob = s.seal(b"secret share", b"keyshare:" + b"\x01" * 32)
    assert blob[0] == seal.BLOB_VERSION
    assert len(blob) == 1 + seal.NONCE_BYTES + len(b"secret share") + 16
    assert b"secret share" not in blob
    assert s.open(blob, b"keyshare:" + b"\x01" * 32) == b"secret share"


def test_fresh_nonce_per_blob() -> None:
    s = fast_sealer()
    a, b = s.seal(b"x", b"aad"), s.seal(b"x", b"aad")
    assert a[1:13] != b[1:13]
    assert a != b


def test_same_passphrase_and_salt_give_the_same_key() -> None:
    blob = fast_sealer().seal(b"data", b"aad")
    assert fast_sealer().open(blob, b"aad") == b"data"


def test_production_scrypt_cost_is_the_default() -> None:
    blob = Sealer.from_passphrase(b"pw", SALT).seal(b"data", b"aad")
    assert Sealer.from_passphrase(b"pw", SALT, n=seal.SCRYPT_N).open(blob, b"aad") == b"data"
    with pytest.raises(SealError):
        Sealer.from_passphrase(b"pw", SALT, n=FAST_N).open(blob, b"aad")
    assert seal.SCRYPT_N == 2**15


@pytest.mark.parametrize(("passphrase", "salt"), [
    pytest.param(b"wrong horse", SALT, id="wrong-passphrase"),
    pytest.param(b"correct horse", bytes(16), id="other-salt"),
])
def test_other_key_refused(passphrase: bytes, salt: bytes) -> None:
    blob = fast_sealer().seal(b"data", b"aad")
    with pytest.raises(SealError, match="failed authentication"):
        fast_sealer(passphrase, salt).open(blob, b"aad")


def test_swapped_aad_refused() -> None:
    s = fast_sealer()
    blob = s.seal(b"share of key A", b"keyshare:" + b"A" * 32)
    with pytest.raises(SealError, match="failed authentication"):
        s.open(blob, b"keyshare:" + b"B" * 32)
    with pytest.raises(SealError):
        s.open(blob, b"auxinfo:" + b"A" * 32)


@pytest.mark.parametrize("index", [0, 1, 5, 13, -1])
def test_tampered_blob_refused(index: int) -> None:
    s = fast_sealer()
    blob = bytearray(s.seal(b"some secret bytes", b"aad"))
    blob[index] ^= 0x01
    with pytest.raises(SealError) as exc:
        s.open(bytes(blob), b"aad")
    assert "some secret" not in str(exc.value)


def test_truncated_blob_refused() -> None:
    s = fast_sealer()
    with pytest.raises(SealError, match="truncated"):
        s.open(s.seal(b"", b"aad")[:-1], b"aad")


def test_key_never_shown() -> None:
    key = bytes(range(32))
    s = Sealer(key)
    assert key.hex() not in repr(s)
    assert "hidden" in repr(s)
    with pytest.raises(SealError):
        Sealer(key[:16])


def test_empty_passphrase_and_short_salt_refused() -> None:
    with pytest.raises(PassphraseError, match="empty"):
        Sealer.from_passphrase(b"", SALT, n=FAST_N)
    with pytest.raises(SealError, match="salt"):
        Sealer.from_passphrase(b"pw", b"short", n=FAST_N)


# --- salt -----------------------------------------------------------------------------


def test_salt_created_once_then_reused(tmp_path: Path) -> None:
    path = tmp_path / "salt"
    first = load_or_create_salt(path)
    assert len(first) == 16
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_salt(path) == first
    assert load_or_create_salt(tmp_path / "salt2") != first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["salt", "salt2"]


def test_corrupt_salt_refused(tmp_path: Path) -> None:
    path = tmp_path / "salt"
    path.write_bytes(b"short")
    with pytest.raises(SealError, match="salt file"):
        load_or_create_salt(path)


# --- passphrase sources -------------------------------------------------------------


def _passfile(tmp_path: Path, content: bytes, mode: int) -> Path:
    path = tmp_path / "passphrase"
    path.write_bytes(content)
    path.chmod(mode)
    return path


def test_passphrase_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MPC_TEST_PASSPHRASE", "from env\n")
    # the environment variable is taken verbatim
    assert passphrase_from_env_or_file("MPC_TEST_PASSPHRASE", None) == b"from env\n"


def test_passphrase_from_file_strips_surrounding_whitespace(tmp_path: Path) -> None:
    """As node.toml's passphrase file always was read: an editor's extra newline does not
    lock a node out of what it sealed."""
    path = _passfile(tmp_path, b" from file\n\n", 0o600)
    assert passphrase_from_env_or_file(None, path) == b"from file"
    path.write_bytes(b"crlf\r\n")
    assert passphrase_from_env_or_file(None, path) == b"crlf"
    path.write_bytes(b"no newline")
    assert passphrase_from_env_or_file("MPC_TEST_UNSET_VAR", path) == b"no newline"


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_passphrase_file_readable_by_others_refused(tmp_path: Path, mode: int) -> None:
    path = _passfile(tmp_path, b"secret-passphrase\n", mode)
    with pytest.raises(PassphraseError, match="readable by group or others") as exc:
        passphrase_from_env_or_file(None, path)
    assert "secret-passphrase" not in str(exc.value)


def test_passphrase_file_0400_accepted(tmp_path: Path) -> None:
    assert passphrase_from_env_or_file(None, _passfile(tmp_path, b"pw", 0o400)) == b"pw"


def test_empty_passphrase_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(PassphraseError, match="empty"):
        passphrase_from_env_or_file(None, _passfile(tmp_path, b"\n", 0o600))
    monkeypatch.setenv("MPC_TEST_PASSPHRASE", "")
    with pytest.raises(PassphraseError, match="empty"):
        passphrase_from_env_or_file("MPC_TEST_PASSPHRASE", None)


def test_no_source_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MPC_TEST_PASSPHRASE", raising=False)
    with pytest.raises(PassphraseError, match="no passphrase"):
        passphrase_from_env_or_file("MPC_TEST_PASSPHRASE", None)
    with pytest.raises(PassphraseError, match="no passphrase"):
        passphrase_from_env_or_file(None, None)
    with pytest.raises(PassphraseError, match="cannot open"):
        passphrase_from_env_or_file(None, tmp_path / "missing")


def test_both_sources_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MPC_TEST_PASSPHRASE", "a")
    with pytest.raises(PassphraseError, match="only one"):
        passphrase_from_env_or_file("MPC_TEST_PASSPHRASE", _passfile(tmp_path, b"b", 0o600))


def test_passphrase_file_symlink_refused(tmp_path: Path) -> None:
    target = _passfile(tmp_path, b"pw", 0o600)
    link = tmp_path / "link"
    link.symlink_to(target)
    with pytest.raises(PassphraseError, match="cannot open"):
        passphrase_from_env_or_file(None, link)


# --- key-check value ------------------------------------------------------------------


def test_kcv_created_then_checked(tmp_path: Path) -> None:
    path = tmp_path / "kcv"
    fast_sealer().verify_kcv(path)
    assert path.exists()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    created = path.read_bytes()
    fast_sealer().verify_kcv(path)  # same passphrase: accepted, file untouched
    assert path.read_bytes() == created


def test_kcv_wrong_passphrase(tmp_path: Path) -> None:
    path = tmp_path / "kcv"
    fast_sealer(b"right").verify_kcv(path)
    with pytest.raises(SealError, match="wrong passphrase") as exc:
        fast_sealer(b"typo-passphrase-123").verify_kcv(path)
    assert "typo-passphrase" not in str(exc.value)


def test_kcv_with_unexpected_content_refused(tmp_path: Path) -> None:
    s = fast_sealer()
    path = tmp_path / "kcv"
    path.write_bytes(s.seal(b"something else", seal.KCV_AAD))
    with pytest.raises(SealError, match="unexpected content"):
        s.verify_kcv(path)
