"""Protocol sessions inside a signer node: the pure state machines behind signed,
encrypted envelopes (DESIGN §3).

The coordinator starts a session and then, round after round, hands each node the
envelopes addressed to it; the node checks every envelope (session, round, sender,
recipient, signatures), decodes the payloads into the protocol's message types, runs
the round and seals its own messages for the next one. Secret direct payloads (VSS
shares) are never disclosed; every other direct payload a node received is disclosed
at the end, signed by its sender, so a ceremony transcript can be verified offline.

A presign session whose δ check fails does not abort at once: it runs one more round,
"presign/identify" (``identify_round``), in which the signers disclose their received
MtA messages and reopen their δ_i, and then aborts naming the signer that lied. The
inner signatures of the disclosed messages are checked here, before the pure step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mpcnode.core import codec
from mpcnode.core.errors import COORDINATOR, ProtocolError
from mpcnode.crypto.random_source import RandomSource
from mpcnode.protocol import aux_info, identify_round, keygen, presign, refresh
from mpcnode.protocol.identify_round import DisclosedMta, SignedMessage
from mpcnode.protocol.presignature import MtaCiphertexts
from mpcnode.protocol.rounds import RoundOutput
from mpcnode.rpc import node_pb2 as pb
from mpcnode.transport import envelope
from mpcnode.transport.identity import IdentityKeys, IdentityPublic


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

# After a failed δ check (CGGMP21 §4.3): one more round, then an abort naming the culprit.
IDENTIFY_DELTA = RoundSpec(identify_round.ROUND, identify_round.DisclosureBcast,
                           identify_round.EvidenceDirect)


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

    @property
    def round_spec(self) -> RoundSpec:
        """The round whose messages we wait for; past the protocol's last round, only
        the δ identification round can follow."""
        return self.spec[self.step] if self.step < len(self.spec) else IDENTIFY_DELTA

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
        if self.done:
            raise ProtocolError(COORDINATOR, "relayed messages to a finished session")
        rnd = self.round_spec
        broadcasts, direct = self._open_all(rnd, inbound)
        if rnd is IDENTIFY_DELTA:
            identification: identify_round.DeltaIdentification = self.state
            identification.receive(self._checked_disclosures(broadcasts), direct)  # raises
        args: list[Any] = [broadcasts]
        if rnd.direct is not None:
            args.append(direct)
        if rnd.receive_takes_rng:
            args.append(rng)
        try:
            out = self.state.receive(*args)
        except presign.DeltaCheckError as failure:
            return self._identify_delta(failure, rng)
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

    def _identify_delta(self, failure: presign.DeltaCheckError,
                        rng: RandomSource) -> list[pb.Envelope]:
        """Start "presign/identify": disclose the MtA messages we received, reopen δ_i."""
        received = [SignedMessage(e.sender, e.recipient, e.body, e.signature)
                    for e in self.disclosed if e.round == identify_round.MTA_ROUND]
        self.state, out = identify_round.start_delta(failure, received, rng)
        self.step = len(self.spec)
        return self.seal(out)

    def _checked_disclosures(
        self, broadcasts: Mapping[int, identify_round.DisclosureBcast]
    ) -> dict[int, list[DisclosedMta]]:
        """Each signer's disclosed MtA messages, every one signed by its sender for this
        session; a discloser that passes on anything else is named."""
        signers = {**self.peers, self.keys.public.party: self.keys.public}
        return {
            discloser: [open_disclosed_mta(signers, self.session_id, discloser, pb.Envelope(
                session_id=self.session_id, round=identify_round.MTA_ROUND, sender=m.sender,
                recipient=m.recipient, body=m.payload, signature=m.signature))
                for m in b.received]
            for discloser, b in sorted(broadcasts.items())
        }


def open_disclosed_mta(signers: Mapping[int, IdentityPublic], session_id: bytes,
                       culprit: int, env: pb.Envelope) -> DisclosedMta:
    """Check one disclosed presign/2 direct message and return its ciphertexts.

    Anything but a message signed by its sender, between two signers, for this session
    and round names ``culprit`` (who handed it over); a signed but undecodable payload
    names its sender, who signed it.
    """
    where = f"presign/2 message {env.sender}→{env.recipient}"
    if env.session_id != session_id or env.round != identify_round.MTA_ROUND:
        raise ProtocolError(culprit, f"disclosed a {env.round!r} message of another session "
                            "or round as a presign/2 message")
    if env.sender not in signers or env.recipient not in signers or env.sender == env.recipient:
        raise ProtocolError(culprit, f"disclosed a {where} that is not between two signers")
    if not envelope.verify_transcript_entry(signers, env):
        raise ProtocolError(culprit, f"disclosed a {where} that party {env.sender} did not "
                            "sign (forged)")
    try:
        msg = codec.from_bytes(presign.Direct2, env.body)
    except (codec.DecodeError, ValueError, TypeError) as exc:
        raise ProtocolError(env.sender, f"signed a malformed presign/2 message: {exc}") from exc
    return DisclosedMta(env.sender, env.recipient,
                        MtaCiphertexts(msg.D, msg.F, msg.D_hat, msg.F_hat))


def disclosed_by_recipient(messages: Iterable[DisclosedMta]) -> dict[int, list[DisclosedMta]]:
    """Disclosed messages grouped by the signer that received (and so disclosed) them."""
    out: dict[int, list[DisclosedMta]] = {}
    for m in messages:
        out.setdefault(m.recipient, []).append(m)
    return out


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
