"""Protocol sessions inside a signer node: the pure state machines behind signed,
encrypted envelopes (DESIGN §3).

The coordinator starts a session and then, round after round, hands each node the
envelopes addressed to it; the node checks every envelope (session, round, sender,
recipient, signatures), decodes the payloads into the protocol's message types, runs
the round and seals its own messages for the next one. Secret direct payloads (VSS
shares) are never disclosed; every other direct payload a node received is disclosed
at the end, signed by its sender, so a ceremony transcript can be verified offline.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mpcnode import codec, envelope
from mpcnode.crypto.random_source import RandomSource
from mpcnode.errors import COORDINATOR, ProtocolError
from mpcnode.identity import IdentityKeys, IdentityPublic
from mpcnode.protocol import aux_info, keygen, presign, refresh
from mpcnode.protocol.rounds import RoundOutput
from mpcnode.rpc import node_pb2 as pb


@dataclass(frozen=True)
class RoundSpec:
    """The messages of one round: made by the previous step, consumed by ``receive``."""

    name: str
    broadcast: type
    direct: type | None = None
    direct_secret: bool = False  # direct payloads are secret shares: never disclosed
    receive_takes_rng: bool = False


SPECS: dict[str, tuple[RoundSpec, ...]] = {
    "keygen": (
        RoundSpec("keygen/1", keygen.Msg1),
        RoundSpec("keygen/2", keygen.Msg2, keygen.Share2, direct_secret=True),
        RoundSpec("keygen/3", keygen.Msg3),
    ),
    "aux_info": (
        RoundSpec("aux/1", aux_info.Msg1),
        RoundSpec("aux/2", aux_info.Msg2, receive_takes_rng=True),
        RoundSpec("aux/3", aux_info.Msg3, aux_info.Direct3),
    ),
    "presign": (
        RoundSpec("presign/1", presign.Bcast1, presign.Direct1, receive_takes_rng=True),
        RoundSpec("presign/2", presign.Bcast2, presign.Direct2, receive_takes_rng=True),
        RoundSpec("presign/3", presign.Bcast3, presign.Direct3),
    ),
    "refresh": (
        RoundSpec("refresh/1", refresh.Msg1),
        RoundSpec("refresh/2", refresh.Msg2, refresh.Share2, direct_secret=True),
        RoundSpec("refresh/3", refresh.Msg3),
    ),
}


@dataclass
class Session:
    """One running protocol session at one node (mutable: it advances round by round)."""

    protocol: str
    nonce: bytes
    session_id: bytes
    keys: IdentityKeys = field(repr=False)
    peers: dict[int, IdentityPublic]  # the other parties of this session
    state: Any = field(repr=False)
    key_id: bytes = b""  # the key the session serves (b"" for keygen)
    step: int = 0  # index into SPECS[protocol] of the messages we wait for
    disclosed: list[pb.Envelope] = field(default_factory=list, repr=False)
    result: Any = field(default=None, repr=False)

    @property
    def spec(self) -> tuple[RoundSpec, ...]:
        return SPECS[self.protocol]

    @property
    def done(self) -> bool:
        return self.result is not None

    def seal(self, out: RoundOutput[Any, Any]) -> list[pb.Envelope]:
        """Our messages of the round we are about to wait for."""
        rnd = self.spec[self.step]
        envs = [envelope.seal_broadcast(self.keys, self.session_id, rnd.name,
                                        codec.to_bytes(out.broadcast))]
        for j, msg in sorted(out.direct.items()):
            envs.append(envelope.seal_direct(self.keys, self.peers[j], self.session_id,
                                             rnd.name, codec.to_bytes(msg)))
        return envs

    def deliver(self, inbound: list[pb.Envelope], rng: RandomSource) -> list[pb.Envelope]:
        """Run the round on the relayed envelopes; returns our next messages ([] at the end)."""
        if self.done:
            raise ProtocolError(COORDINATOR, "relayed messages to a finished session")
        rnd = self.spec[self.step]
        broadcasts, direct = self._open_all(rnd, inbound)
        args: list[Any] = [broadcasts]
        if rnd.direct is not None:
            args.append(direct)
        if rnd.receive_takes_rng:
            args.append(rng)
        out = self.state.receive(*args)
        if self.step == len(self.spec) - 1:
            self.result, self.state = out, None
            return []
        self.state, round_out = out
        self.step += 1
        return self.seal(round_out)

    def _open_all(
        self, rnd: RoundSpec, inbound: list[pb.Envelope]
    ) -> tuple[dict[int, Any], dict[int, Any]]:
        broadcasts: dict[int, Any] = {}
        direct: dict[int, Any] = {}
        for env in inbound:
            opened = envelope.open_envelope(self.keys, self.peers, self.session_id, rnd.name, env)
            is_direct = opened.recipient != envelope.BROADCAST
            bucket = direct if is_direct else broadcasts
            if opened.sender in bucket:
                raise ProtocolError(COORDINATOR,
                                    f"relayed two {rnd.name} messages of party {opened.sender}")
            cls = rnd.direct if is_direct else rnd.broadcast
            if cls is None:
                raise ProtocolError(opened.sender, f"sent a direct message in round {rnd.name}")
            try:
                bucket[opened.sender] = codec.from_bytes(cls, opened.payload)
            except (codec.DecodeError, ValueError, TypeError) as exc:
                raise ProtocolError(opened.sender, f"malformed {rnd.name} message: {exc}") from exc
            if is_direct and not rnd.direct_secret:
                self.disclosed.append(envelope.disclosed(self.session_id, rnd.name, opened))
        return broadcasts, direct


Starter = Callable[[Any, RandomSource], tuple[Any, RoundOutput[Any, Any]]]


def start_session(protocol: str, nonce: bytes, session_id: bytes, keys: IdentityKeys,
                  peers: Mapping[int, IdentityPublic], starter: Starter, cfg: Any,
                  rng: RandomSource, key_id: bytes = b"") -> tuple[Session, list[pb.Envelope]]:
    """Start the pure protocol with ``cfg`` and seal its round-1 messages."""
    if protocol not in SPECS:
        raise ValueError(f"unknown protocol {protocol!r}")
    state, out = starter(cfg, rng)
    session = Session(protocol, nonce, session_id, keys, dict(peers), state, key_id)
    return session, session.seal(out)
