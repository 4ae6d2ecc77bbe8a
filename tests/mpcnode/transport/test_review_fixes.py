"""Regressions for the security review: nonce replay, envelope field lengths, secret repr."""

from __future__ import annotations

from pathlib import Path

import pytest

from mpcnode.core.errors import COORDINATOR, ProtocolError
from mpcnode.protocol import keygen, refresh
from mpcnode.state.node_store import NodeStore
from mpcnode.state.seal import Sealer
from mpcnode.transport import envelope
from mpcnode.transport.identity import IdentityKeys


def test_a_session_nonce_is_accepted_once_ever(tmp_path: Path) -> None:
    store = NodeStore(tmp_path, Sealer(b"k" * 32))
    store.claim_session_nonce(b"n" * 32, "keygen")
    with pytest.raises(ProtocolError, match="nonce reused") as exc:
        store.claim_session_nonce(b"n" * 32, "presign")
    assert exc.value.culprit == COORDINATOR
    store.close()
    reopened = NodeStore(tmp_path, Sealer(b"k" * 32))  # also after a restart
    with pytest.raises(ProtocolError, match="nonce reused"):
        reopened.claim_session_nonce(b"n" * 32, "keygen")
    reopened.claim_session_nonce(b"m" * 32, "keygen")
    reopened.close()


def test_shifting_bytes_between_envelope_fields_blames_the_relay() -> None:
    alice, bob = IdentityKeys.generate(1), IdentityKeys.generate(2)
    env = envelope.seal_direct(alice, bob.public, b"s" * 32, "keygen/2", b"payload")
    peers = {1: alice.public}
    assert envelope.open_envelope(bob, peers, b"s" * 32, "keygen/2", env).payload == b"payload"
    # Same concatenated bytes, so the outer signature alone would still verify.
    shifted = type(env)()
    shifted.CopyFrom(env)
    shifted.ephemeral_key = env.ephemeral_key + env.nonce[:1]
    shifted.nonce = env.nonce[1:]
    with pytest.raises(ProtocolError, match="malformed key or nonce") as exc:
        envelope.open_envelope(bob, peers, b"s" * 32, "keygen/2", shifted)
    assert exc.value.culprit == COORDINATOR


def test_vss_shares_never_appear_in_a_repr() -> None:
    secret = 0x5EC12E7_5EC12E7
    for msg in (keygen.Share2(secret), refresh.Share2(secret)):
        assert str(secret) not in repr(msg) and hex(secret)[2:] not in repr(msg)
