"""The durable record that a presignature was used, written before σ_i leaves the node.

A SQLite commit with ``synchronous=FULL`` costs several page writes and an fsync of the
WAL; on the online signing path that was most of a node's time. This journal is the
smaller durable step: one appended record per signature and one ``fdatasync``. The
presignature table is updated later, many records in one transaction (before any read
of the pool's status and at each checkpoint), and the journal is replayed into it when the
store opens, so the journal is the truth about consumption
from the moment it returns until a checkpoint has made the table durable.

Record framing (all lengths big-endian): ``u32 length ‖ payload ‖ SHA-256(payload)``,
payload = ``u8 id length ‖ presignature id ‖ u32 party ‖ 32-byte σ_i ‖ u16 request id
length ‖ request id (UTF-8) ‖ note``. The note is what the node's policy check must
remember about the signature (its ledger entry and sign counters), made durable by the
same ``fdatasync``. A record with an empty presignature id (and zero σ_i, party and request
id) carries a note alone: a spend the node recorded before signing anything for it. A torn
last record (a crash inside the write, before ``fdatasync`` returned)
was never acknowledged, so no σ_i from it left the node: it is dropped. A bad record
followed by good ones is damage, not a torn write, and the store refuses to open.
"""

from __future__ import annotations

import hashlib
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from mpcnode.core.errors import MpcnodeError, UsageError

_LEN = struct.Struct(">I")
_PARTY = struct.Struct(">I")
_DIGEST = 32
_SIGMA = 32
MAX_REQUEST_ID = 256  # bytes of UTF-8
MAX_NOTE = 4096
_RID_LEN = struct.Struct(">H")
# The longest record: a torn write can leave at most this many bytes at the end, so more
# unparsable bytes than this are damage (e.g. a flipped length prefix), never a tear.
MAX_RECORD = (_LEN.size + 1 + 255 + _PARTY.size + _SIGMA + _RID_LEN.size + MAX_REQUEST_ID
              + MAX_NOTE + _DIGEST)


class JournalError(MpcnodeError):
    """The consumption journal is damaged (not merely torn at its end)."""


@dataclass(frozen=True)
class Consumption:
    presignature_id: bytes
    party: int
    sigma: int
    request_id: str
    note: bytes = b""

    @property
    def consumes(self) -> bool:
        """False for a note alone (no presignature id): a spend recorded before any
        signature (``NodeStore.journal_note``)."""
        return bool(self.presignature_id)

    def encode(self) -> bytes:
        pid = self.presignature_id
        if not len(pid) < 256:
            raise UsageError("presignature id must have 0..255 bytes")
        rid = self.request_id.encode()
        if len(rid) > MAX_REQUEST_ID:
            raise UsageError(f"request id longer than {MAX_REQUEST_ID} bytes")
        if len(self.note) > MAX_NOTE:
            raise UsageError(f"note longer than {MAX_NOTE} bytes")
        payload = (bytes([len(pid)]) + pid + _PARTY.pack(self.party)
                   + self.sigma.to_bytes(_SIGMA, "big") + _RID_LEN.pack(len(rid)) + rid
                   + self.note)
        return _LEN.pack(len(payload)) + payload + hashlib.sha256(payload).digest()

    @classmethod
    def decode(cls, payload: bytes) -> Consumption:
        n = payload[0]
        pid = payload[1:1 + n]
        rest = payload[1 + n:]
        fixed = _PARTY.size + _SIGMA + _RID_LEN.size
        if len(pid) != n or len(rest) < fixed:
            raise JournalError("journal record too short")
        party = _PARTY.unpack_from(rest)[0]
        sigma = int.from_bytes(rest[_PARTY.size:_PARTY.size + _SIGMA], "big")
        (m,) = _RID_LEN.unpack_from(rest, _PARTY.size + _SIGMA)
        if len(rest) < fixed + m:
            raise JournalError("journal record too short")
        request_id = rest[fixed:fixed + m].decode()
        return cls(pid, party, sigma, request_id, rest[fixed + m:])


def _zero(data: bytes, start: int) -> bool:
    return not any(data[start:])


def parse(data: bytes) -> tuple[list[Consumption], int]:
    """Every complete record and the length they fill. The file is preallocated with
    zeros, so the records end where a zero length begins. A torn last record (only zeros
    after the bytes it claims) is left out; anything else that does not parse is damage
    and raises."""
    out: list[Consumption] = []
    pos = 0
    while pos < len(data):
        if len(data) - pos < _LEN.size:
            if _zero(data, pos):
                break
            raise JournalError(f"consumption journal damaged at byte {pos}")
        (n,) = _LEN.unpack_from(data, pos)
        end = pos + _LEN.size + n + _DIGEST
        payload = data[pos + _LEN.size:pos + _LEN.size + n]
        whole = n > 0 and end <= len(data) and \
            hashlib.sha256(payload).digest() == data[end - _DIGEST:end]
        if not whole:
            # The end (zeros), or the last write torn by a crash: nothing was written after
            # it. Bytes beyond what this record claims mean damage, never a tear.
            after = end if 0 < n <= MAX_RECORD else pos + _LEN.size
            if _zero(data, after):
                break
            raise JournalError(f"consumption journal damaged at byte {pos}")
        out.append(Consumption.decode(payload))
        pos = end
    return out, pos


PREALLOCATE = 256 * 1024  # zeros written ahead: appends then never change the file size


class ConsumptionJournal:
    """Records written in place into a zero-filled file and fdatasync'ed one by one (no
    size change, so no metadata to flush); emptied once its records are in the table."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        with open(path, "rb") as f:
            data = f.read()
        records, valid = parse(data)
        self.records = len(records)
        self._pos = valid
        if not _zero(data, valid) or len(data) < valid + PREALLOCATE:
            # Zero a torn tail (the next record must not sit next to garbage) and keep
            # zeros ahead of the write position.
            self._write_zeros(valid, max(len(data), valid + PREALLOCATE) - valid)

    def _write_zeros(self, start: int, length: int) -> None:
        os.pwrite(self._fd, bytes(length), start)
        os.fsync(self._fd)

    def read(self) -> list[Consumption]:
        with open(self.path, "rb") as f:
            return parse(f.read())[0]

    def append(self, record: Consumption) -> None:
        """Durable when this returns: the caller may then release σ_i."""
        data = record.encode()
        if os.pwrite(self._fd, data, self._pos) != len(data):
            raise OSError("short write to the consumption journal")
        os.fdatasync(self._fd)
        self._pos += len(data)
        self.records += 1

    def clear(self) -> None:
        """Drop every record: call only after the table holding them was made durable."""
        os.ftruncate(self._fd, 0)
        self._write_zeros(0, PREALLOCATE)
        self._pos = 0
        self.records = 0

    def close(self) -> None:
        os.close(self._fd)
