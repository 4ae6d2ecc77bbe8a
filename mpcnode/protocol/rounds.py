"""The one round interface of every protocol, what rounds exchange, and the
broadcast-consistency echo.

A protocol is a ``start(config, rng)`` and a chain of round states. Every round state
has one method, ``receive(inbound, rng) -> step``: ``inbound`` holds what the peers sent
it (each peer's broadcast and the direct message each peer sent it), and the step is
either ``Next(state, out)`` (the state waiting for the next round and this party's
messages for it) or ``Done(result)``. A round that needs no randomness ignores ``rng``;
the state machines stay pure (no I/O, clock, globals or randomness but ``rng``).

A round sends one broadcast payload (the same for every peer) and one direct payload
per peer. The next round's messages carry ``echo``: a hash of all broadcasts of the
previous round as the sender saw them, so a relay that shows different broadcasts to
different parties is caught (DESIGN §3, "broadcast consistency").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Generic, NamedTuple, Protocol, TypeAlias, TypeVar

from mpcnode.core.errors import ProtocolError
from mpcnode.crypto import codec
from mpcnode.crypto.random_source import RandomSource
from mpcnode.crypto.transcript import Transcript

B = TypeVar("B")
D = TypeVar("D")
S_co = TypeVar("S_co", covariant=True)
R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)


class RoundName(StrEnum):
    """Base of every protocol's round names (an enum in each protocol module). A round
    name is a wire string (envelopes, transcripts, proof contexts): it compares, hashes,
    formats and ``repr``s as that string."""

    def __repr__(self) -> str:
        return repr(self.value)


@dataclass(frozen=True)
class RoundOutput(Generic[B, D]):
    """One party's messages of a round: a broadcast, and a direct payload per peer."""

    broadcast: B
    direct: dict[int, D] = field(default_factory=dict)


@dataclass(frozen=True)
class Inbound(Generic[B, D]):
    """What one party received in a round: each peer's broadcast and the direct message
    each peer sent it (none in a round without direct messages)."""

    broadcasts: Mapping[int, B]
    direct: Mapping[int, D] = field(default_factory=dict)


class Next(NamedTuple, Generic[S_co, B, D]):
    """A round went through: the state that waits for the next round, and our messages
    of that round. Unpacks as ``state, out``."""

    state: S_co
    out: RoundOutput[B, D]


@dataclass(frozen=True)
class Done(Generic[R_co]):
    """The last round went through: the protocol's output at this party."""

    result: R_co


class Round(Protocol[R_co]):
    """A protocol state waiting for one round's messages; ``R_co`` is the protocol's output."""

    def receive(self, inbound: Inbound[Any, Any], rng: RandomSource) -> Step[R_co]: ...


Step: TypeAlias = "Next[Round[R], Any, Any] | Done[R]"
"""What ``receive`` returns: the next state with our messages, or the output."""


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
