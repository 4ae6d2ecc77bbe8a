"""The closing record of a ceremony transcript: what each node signs about a key's history.

A ceremony transcript is a list of sessions that nobody signs as a whole, so a transcript
with its last refresh (or aux info) removed, or with sessions reordered, still verifies
message by message. Each node therefore keeps its own list of the key's ceremony sessions
(keygen, aux info, refresh, in the order they finished at the node) and signs it with its
identity key; the transcript ends with these signatures, and a verifier checks that every
party of the key signed exactly the sessions the transcript holds, in its order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mpcnode.core.canonical_json import canonical_json
from mpcnode.transport import identity
from mpcnode.transport.identity import IdentityKeys, IdentityPublic

DOMAIN = "mpc-ceremony/closing/v1"


@dataclass(frozen=True)
class SessionRef:
    """One finished ceremony session, as a closing record names it."""

    protocol: str  # a ceremony protocol's wire name
    session_id: bytes


def statement(key_id: bytes, party: int, sessions: Sequence[SessionRef]) -> bytes:
    """The bytes party ``party`` signs: its domain, the key, the party and the sessions."""
    return canonical_json({"domain": DOMAIN, "key_id": key_id.hex(), "party": party,
                           "sessions": [[s.protocol, s.session_id.hex()] for s in sessions]},
                          ascii_only=True)


def sign(keys: IdentityKeys, key_id: bytes, sessions: Sequence[SessionRef]) -> bytes:
    return keys.sign(statement(key_id, keys.party, sessions))


def verify(public: IdentityPublic, key_id: bytes, sessions: Sequence[SessionRef],
           signature: bytes) -> bool:
    """True iff ``signature`` is ``public``'s closing signature over ``sessions``."""
    return identity.verify(public, statement(key_id, public.party, sessions), signature)
