"""Disclosed MtA messages: the transport's check of the presign/2 direct messages a
signer hands over for identification (CGGMP21 §4.3, "Identifying aborts").

Each disclosed message must still carry its sender's inner signature over (session,
round, sender, recipient, payload): then whoever passed it on cannot have forged or
moved it, and ``identify_round.merged_view`` can join the disclosures safely. Used by a
presign session's recovery round (``sessions.py``) and by the identification after a
bad signature (``daemon/sign_identification.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from mpcnode.core.errors import ProtocolError
from mpcnode.crypto import codec
from mpcnode.protocol.identify_round import DisclosedMta
from mpcnode.protocol.presign import Direct2, PresignRound
from mpcnode.protocol.presignature import MtaCiphertexts
from mpcnode.rpc import node_pb2 as pb
from mpcnode.transport import envelope
from mpcnode.transport.identity import IdentityPublic


def open_disclosed_mta(signers: Mapping[int, IdentityPublic], session_id: bytes,
                       culprit: int, env: pb.Envelope) -> DisclosedMta:
    """Check one disclosed presign/2 direct message and return its ciphertexts.

    Anything but a message signed by its sender, between two signers, for this session
    and round names ``culprit`` (who handed it over); a signed but undecodable payload
    names its sender, who signed it.
    """
    where = f"presign/2 message {env.sender}→{env.recipient}"
    if env.session_id != session_id or env.round != PresignRound.MTA:
        raise ProtocolError(culprit, f"disclosed a {env.round!r} message of another session "
                            "or round as a presign/2 message")
    if env.sender not in signers or env.recipient not in signers or env.sender == env.recipient:
        raise ProtocolError(culprit, f"disclosed a {where} that is not between two signers")
    if not envelope.verify_transcript_entry(signers, env):
        raise ProtocolError(culprit, f"disclosed a {where} that party {env.sender} did not "
                            "sign (forged)")
    try:
        msg = codec.from_bytes(Direct2, env.body)
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
