"""End-to-end protection of protocol messages relayed by the coordinator (DESIGN §3).

A broadcast is signed by its sender over (session, round, sender, recipient = 0, body).
A direct message is signed twice: an inner signature over the plaintext (so the
recipient can later disclose it to an auditor as a transferable, signed statement),
and an outer signature over the encrypted envelope (so anyone can see who sent it).
The plaintext and inner signature are encrypted to the recipient (X25519 + HKDF +
ChaCha20-Poly1305) with the signed header as associated data.

A relay can therefore drop or reorder messages but cannot read a direct message, change
any message, move it to another session, round or recipient, or replay it: each of those
is rejected here, naming the coordinator as the culprit.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from mpcnode.core.errors import COORDINATOR, ProtocolError
from mpcnode.crypto.transcript import Transcript
from mpcnode.rpc import node_pb2 as pb
from mpcnode.transport.identity import (
    EnvelopeDecryptError,
    IdentityKeys,
    IdentityPublic,
    seal_to,
    verify,
)

BROADCAST = 0
_KIND_BROADCAST = b"broadcast"
_KIND_SEALED = b"sealed"
_KIND_PLAIN = b"plain"


def header(session_id: bytes, round_name: str, sender: int, recipient: int) -> bytes:
    t = Transcript("mpc-envelope/header/v1")
    t.append_bytes("session", session_id)
    t.append_str("round", round_name)
    t.append_int("sender", sender)
    t.append_int("recipient", recipient)
    return t.challenge_bytes("header", 32)


def _signed(hdr: bytes, kind: bytes, body: bytes) -> bytes:
    return hdr + kind + hashlib.sha256(body).digest()


def seal_broadcast(keys: IdentityKeys, session_id: bytes, round_name: str,
                   payload: bytes) -> pb.Envelope:
    sender = keys.public.party
    hdr = header(session_id, round_name, sender, BROADCAST)
    return pb.Envelope(session_id=session_id, round=round_name, sender=sender,
                       recipient=BROADCAST, body=payload,
                       signature=keys.sign(_signed(hdr, _KIND_BROADCAST, payload)))


def seal_direct(keys: IdentityKeys, recipient: IdentityPublic, session_id: bytes,
                round_name: str, payload: bytes) -> pb.Envelope:
    sender = keys.public.party
    hdr = header(session_id, round_name, sender, recipient.party)
    inner = keys.sign(_signed(hdr, _KIND_PLAIN, payload))
    eph, nonce, ct = seal_to(recipient, len(payload).to_bytes(8, "big") + payload + inner, hdr)
    outer = keys.sign(_signed(hdr, _KIND_SEALED, eph + nonce + ct))
    return pb.Envelope(session_id=session_id, round=round_name, sender=sender,
                       recipient=recipient.party, body=ct, ephemeral_key=eph, nonce=nonce,
                       signature=outer)


@dataclass(frozen=True)
class Opened:
    sender: int
    recipient: int
    payload: bytes
    inner_signature: bytes  # for direct messages: the sender's signature on the plaintext


def open_envelope(keys: IdentityKeys, peers: Mapping[int, IdentityPublic], session_id: bytes,
                  round_name: str, env: pb.Envelope) -> Opened:
    """Check and open one relayed envelope addressed to us (or broadcast)."""
    me = keys.public.party
    if env.session_id != session_id:
        raise ProtocolError(COORDINATOR, "relayed a message of another session (replay)")
    if env.round != round_name:
        raise ProtocolError(COORDINATOR,
                            f"relayed a {env.round!r} message during round {round_name!r}")
    if env.sender == me or env.sender not in peers:
        raise ProtocolError(COORDINATOR, f"relayed a message from unknown sender {env.sender}")
    if env.recipient not in (BROADCAST, me):
        raise ProtocolError(COORDINATOR,
                            f"relayed a message addressed to party {env.recipient} to party {me}")
    hdr = header(env.session_id, env.round, env.sender, env.recipient)
    pub = peers[env.sender]
    if env.recipient == BROADCAST:
        if not verify(pub, _signed(hdr, _KIND_BROADCAST, env.body), env.signature):
            raise ProtocolError(COORDINATOR, f"relayed a broadcast of party {env.sender} "
                                "whose signature does not verify (tampered)")
        return Opened(env.sender, BROADCAST, env.body, env.signature)
    if len(env.ephemeral_key) != 32 or len(env.nonce) != 12:
        # The signed bytes join these fields, so only fixed lengths make the join unique.
        raise ProtocolError(COORDINATOR, f"relayed a direct message of party {env.sender} "
                            "with malformed key or nonce fields (tampered)")
    sealed = env.ephemeral_key + env.nonce + env.body
    if not verify(pub, _signed(hdr, _KIND_SEALED, sealed), env.signature):
        raise ProtocolError(COORDINATOR, f"relayed a direct message of party {env.sender} "
                            "whose signature does not verify (tampered)")
    try:
        plain = keys.open_from(env.ephemeral_key, env.nonce, env.body, hdr)
    except EnvelopeDecryptError as exc:
        raise ProtocolError(env.sender, "direct message does not decrypt") from exc
    n = int.from_bytes(plain[:8], "big")
    payload, inner = plain[8 : 8 + n], plain[8 + n :]
    if len(plain) < 8 + n or not verify(pub, _signed(hdr, _KIND_PLAIN, payload), inner):
        raise ProtocolError(env.sender, "inner signature of a direct message does not verify")
    return Opened(env.sender, me, payload, inner)


def disclosed(session_id: bytes, round_name: str, opened: Opened) -> pb.Envelope:
    """A received direct message in the clear with its inner signature, for transcripts."""
    return pb.Envelope(session_id=session_id, round=round_name, sender=opened.sender,
                       recipient=opened.recipient, body=opened.payload,
                       signature=opened.inner_signature)


def verify_transcript_entry(peers: Mapping[int, IdentityPublic], env: pb.Envelope) -> bool:
    """Offline check of a transcript entry: a broadcast or a disclosed direct message."""
    pub = peers.get(env.sender)
    if pub is None:
        return False
    hdr = header(env.session_id, env.round, env.sender, env.recipient)
    kind = _KIND_BROADCAST if env.recipient == BROADCAST else _KIND_PLAIN
    return verify(pub, _signed(hdr, kind, env.body), env.signature)
