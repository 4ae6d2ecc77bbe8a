"""The consumption journal: records survive reopening, a torn tail is cut, damage is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from mpcnode.state.consumption_journal import Consumption, ConsumptionJournal, JournalError, parse

A = Consumption(b"\x01" * 32, 1, 12345, "req-a")
B = Consumption(b"\x02" * 32, 3, 2**255 + 7, "req-b/1", b'{"ledger":"note"}')


def test_records_round_trip(tmp_path: Path) -> None:
    j = ConsumptionJournal(tmp_path / "j")
    j.append(A)
    j.append(B)
    j.close()
    again = ConsumptionJournal(tmp_path / "j")
    assert again.read() == [A, B] and again.records == 2
    again.clear()
    assert again.read() == [] and again.records == 0
    again.close()


@pytest.mark.parametrize("cut", [1, 3, 10, 40])
def test_torn_tail_dropped_and_zeroed(tmp_path: Path, cut: int) -> None:
    path = tmp_path / "j"
    torn = B.encode()[:-cut]
    path.write_bytes(A.encode() + torn + bytes(1000))  # what a crash mid-write leaves
    assert parse(path.read_bytes())[0] == [A]
    j = ConsumptionJournal(path)
    raw = path.read_bytes()
    assert raw[:len(A.encode())] == A.encode() and not any(raw[len(A.encode()):])
    j.append(B)  # so the next record does not follow garbage
    j.close()
    assert ConsumptionJournal(path).read() == [A, B]


def test_appends_never_change_the_file_size(tmp_path: Path) -> None:
    """Records go into preallocated zeros, so fdatasync has no size to flush."""
    j = ConsumptionJournal(tmp_path / "j")
    size = (tmp_path / "j").stat().st_size
    for k in range(50):
        j.append(Consumption(bytes([k + 1]) * 32, 1, k, f"r{k}"))
    assert (tmp_path / "j").stat().st_size == size
    j.clear()
    assert j.read() == [] and (tmp_path / "j").stat().st_size == size
    j.close()


def test_torn_last_record_with_bad_digest_dropped(tmp_path: Path) -> None:
    raw = bytearray(A.encode() + B.encode())
    raw[-1] ^= 1
    assert parse(bytes(raw))[0] == [A]


def test_damage_before_the_tail_refused(tmp_path: Path) -> None:
    raw = bytearray(A.encode() + B.encode())
    raw[10] ^= 1  # inside A's payload, B intact after it
    with pytest.raises(JournalError, match="damaged at byte 0"):
        parse(bytes(raw))
    (tmp_path / "j").write_bytes(bytes(raw))
    with pytest.raises(JournalError):
        ConsumptionJournal(tmp_path / "j")


def test_file_mode_0600(tmp_path: Path) -> None:
    ConsumptionJournal(tmp_path / "j").close()
    assert (tmp_path / "j").stat().st_mode & 0o777 == 0o600


def test_flipped_length_prefix_is_damage_not_a_tear() -> None:
    """A length that runs past the end would look torn; with more than one record's
    worth of bytes after it, it cannot be a tear and later records must not vanish."""
    many = b"".join(Consumption(bytes([k + 1]) * 32, 1, k, f"r{k}").encode()
                    for k in range(80))  # more bytes than the longest possible record
    raw = bytearray(many)
    raw[0] = 0xFF  # first record's length now far beyond the file
    with pytest.raises(JournalError, match="damaged at byte 0"):
        parse(bytes(raw))


def test_request_id_length_bounded() -> None:
    with pytest.raises(ValueError, match="request id longer"):
        Consumption(b"\x01" * 32, 1, 1, "x" * 300).encode()
