"""The node's own list of a key's ceremony sessions, which its closing record signs."""

from __future__ import annotations

from pathlib import Path

import pytest

from mpcnode.state.ceremony_log import CeremonyLog, CeremonyLogError
from mpcnode.transport.ceremony_closing import SessionRef

KEY = b"\x01" * 32


def test_sessions_are_kept_in_order_across_reopening(tmp_path: Path) -> None:
    log = CeremonyLog(tmp_path)
    assert log.sessions(KEY) == ()
    first, second = SessionRef("keygen", b"\x02" * 32), SessionRef("aux_info", b"\x03" * 32)
    log.append(KEY, first)
    log.append(KEY, second)
    assert CeremonyLog(tmp_path).sessions(KEY) == (first, second)
    assert CeremonyLog(tmp_path).sessions(b"\x09" * 32) == ()


@pytest.mark.parametrize("content", [b"[]", b'{"sessions": [["keygen"]]}',
                                     b'{"sessions": [["keygen", "zz"]]}', b"{", b"\xff"])
def test_a_damaged_log_is_refused(tmp_path: Path, content: bytes) -> None:
    log = CeremonyLog(tmp_path)
    log.append(KEY, SessionRef("keygen", b"\x02" * 32))
    (tmp_path / "ceremony" / f"{KEY.hex()}.json").write_bytes(content)
    with pytest.raises(CeremonyLogError):
        log.sessions(KEY)
