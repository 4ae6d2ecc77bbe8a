"""What every round of every protocol exchanges, and the broadcast-consistency echo.

A round returns one broadcast payload (the same for every peer) and one direct payload
per peer. The next round's messages carry ``echo``: a hash of all broadcasts of the
previous round as the sender saw them, so a relay that shows different broadcasts to
different parties is caught (DESIGN §3, "broadcast consistency").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from mpcnode.core import codec
from mpcnode.core.errors import ProtocolError
from mpcnode.crypto.transcript import Transcript

B = TypeVar("B")
D = TypeVar("D")


@dataclass(frozen=True)
class RoundOutput(Generic[B, D]):
    broadcast: B
    direct: dict[int, D] = field(default_factory=dict)


def echo_hash(session: bytes, round_name: str, broadcasts: Mapping[int, Any]) -> bytes:
    t = Transcript("cggmp21/echo/v1")
    t.append_bytes("session", session)
    t.append_str("round", round_name)
    for party in sorted(broadcasts):
        t.append_int("party", party)
        t.append_bytes("broadcast", codec.to_bytes(broadcasts[party]))
    return t.challenge_bytes("echo", 32)


def check_echoes(mine: bytes, echoes: Mapping[int, bytes], round_name: str) -> None:
    """Raise if any peer saw other broadcasts than we did in ``round_name``.

    The pure protocol cannot tell whether the sender or the relay equivocated; the
    transport, whose messages are signed, pins it down. Here the culprit is the peer
    whose view differs.
    """
    for party, echo in sorted(echoes.items()):
        if echo != mine:
            raise ProtocolError(
                party, f"broadcast inconsistency: party {party} saw other {round_name} broadcasts"
            )


def require_from(expected: set[int], got: Mapping[int, Any], what: str) -> None:
    """Every expected peer sent exactly one message of the round, and nobody else did."""
    missing = expected - set(got)
    if missing:
        raise ProtocolError(min(missing), f"no {what} message received")
    extra = set(got) - expected
    if extra:
        raise ProtocolError(min(extra), f"unexpected {what} message")
