"""Protocol sessions inside a signer node: the pure state machines behind signed,
encrypted envelopes (DESIGN §3).

The coordinator starts a session and then, round after round, hands each node the
envelopes addressed to it; the node checks every envelope (session, round, sender,
recipient, signatures), decodes the payloads into the message types the protocol's
registry entry gives for the round, runs the round and seals its own messages for the
next one. Secret direct payloads (VSS shares) are never disclosed; every other direct
payload a node received is disclosed at the end, signed by its sender, so a ceremony
transcript can be verified offline.

A protocol with a recovery round (presign: a failed δ check) does not abort at once
when its last round raises the recovery's failure: it runs that one more round, in
which the parties disclose the direct messages they received (of the round the
recovery names) and their evidence, and then aborts naming the party that lied. The
inner signatures of the disclosed messages are checked here, before the pure step.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from mpcnode.core.errors import COORDINATOR, ProtocolError
from mpcnode.crypto import codec
from mpcnode.crypto.random_source import RandomSource
from mpcnode.protocol.identify_round import DisclosedMta, DisclosureBcast, SignedMessage
from mpcnode.protocol.registry import ProtocolName, ProtocolSpec, Recovery, RoundSpec
from mpcnode.protocol.rounds import Done, Inbound, Round, RoundOutput
from mpcnode.rpc import node_pb2 as pb
from mpcnode.transport import envelope
from mpcnode.transport.disclosures import open_disclosed_mta
from mpcnode.transport.identity import IdentityKeys, IdentityPublic

R = TypeVar("R")
C = TypeVar("C")


@dataclass
class Session(Generic[R]):
    """One running protocol session at one node (mutable: it advances round by round)."""

    spec: ProtocolSpec[Any, R, Any]
    nonce: bytes
    session_id: bytes
    keys: IdentityKeys = field(repr=False)
    peers: dict[int, IdentityPublic]  # the other parties of this session
    state: Round[R] | None = field(repr=False)  # None once the session is done
    key_id: bytes = b""  # the key the session serves (b"" for keygen)
    step: int = 0  # index into spec.rounds of the messages we wait for
    disclosed: list[pb.Envelope] = field(default_factory=list, repr=False)
    result: R | None = field(default=None, repr=False)

    @property
    def protocol(self) -> ProtocolName:
        return self.spec.name

    @property
    def done(self) -> bool:
        return self.result is not None

    @property
    def round_spec(self) -> RoundSpec:
        """The round whose messages we wait for; past the protocol's last round, only
        its recovery round can follow."""
        if self.step < len(self.spec.rounds):
            return self.spec.rounds[self.step]
        if self.spec.recovery is None:
            raise ProtocolError(COORDINATOR, "relayed messages to a finished session")
        return self.spec.recovery.round

    def seal(self, out: RoundOutput[Any, Any]) -> list[pb.Envelope]:
        """Our messages of the round we are about to wait for."""
        rnd = self.round_spec
        envs = [envelope.seal_broadcast(self.keys, self.session_id, rnd.name,
                                        codec.to_bytes(out.broadcast))]
        for j, msg in sorted(out.direct.items()):
            envs.append(envelope.seal_direct(self.keys, self.peers[j], self.session_id,
                                             rnd.name, codec.to_bytes(msg)))
        return envs

    def deliver(self, inbound: list[pb.Envelope], rng: RandomSource) -> list[pb.Envelope]:
        """Run the round on the relayed envelopes; returns our next messages ([] at the end)."""
        if self.done or self.state is None:
            raise ProtocolError(COORDINATOR, "relayed messages to a finished session")
        rnd = self.round_spec
        broadcasts, direct = self._open_all(rnd, inbound)
        recovery = self.spec.recovery
        if recovery is not None and rnd is recovery.round:
            broadcasts = self._checked_disclosures(recovery, broadcasts)
        failures = (recovery.failure,) if recovery is not None else ()
        try:
            step = self.state.receive(Inbound(broadcasts, direct), rng)
        except failures as failure:
            assert recovery is not None  # only a recovery's failure is caught
            return self._recover(recovery, failure, rng)
        if isinstance(step, Done):
            self.result, self.state = step.result, None
            return []
        self.state, round_out = step
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

    def _recover(self, recovery: Recovery[Any], failure: ProtocolError,
                 rng: RandomSource) -> list[pb.Envelope]:
        """Start the recovery round: disclose the direct messages we received of the
        round it names, with whatever evidence the recovery makes."""
        received = [SignedMessage(e.sender, e.recipient, e.body, e.signature)
                    for e in self.disclosed if e.round == recovery.disclosed_round]
        self.state, out = recovery.start(failure, received, rng)
        self.step = len(self.spec.rounds)
        return self.seal(out)

    def _checked_disclosures(
        self, recovery: Recovery[Any], broadcasts: Mapping[int, DisclosureBcast]
    ) -> dict[int, list[DisclosedMta]]:
        """Each party's disclosed messages, every one signed by its sender for this
        session; a discloser that passes on anything else is named."""
        signers = {**self.peers, self.keys.public.party: self.keys.public}
        return {
            discloser: [open_disclosed_mta(signers, self.session_id, discloser, pb.Envelope(
                session_id=self.session_id, round=recovery.disclosed_round, sender=m.sender,
                recipient=m.recipient, body=m.payload, signature=m.signature))
                for m in b.received]
            for discloser, b in sorted(broadcasts.items())
        }


def start_session(spec: ProtocolSpec[C, R, Any], nonce: bytes, keys: IdentityKeys,
                  peers: Mapping[int, IdentityPublic], cfg: C, rng: RandomSource,
                  key_id: bytes = b"") -> tuple[Session[R], list[pb.Envelope]]:
    """Start the pure protocol with ``cfg`` and seal its round-1 messages."""
    state, out = spec.start(cfg, rng)
    session = Session(spec, nonce, spec.session_id(cfg), keys, dict(peers), state, key_id)
    return session, session.seal(out)
