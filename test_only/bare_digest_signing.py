"""TEST ONLY: sign a bare digest, with no transaction, policy check or approvals.

The protocol and transport tests predate zero-trust signing and ask the nodes for a
signature on a digest alone. A production node refuses such a request (DESIGN §4); a
node started by the test entry point with ``sign_unauthorized_digests`` gets this
function as its ``UnauthorizedSigning`` strategy.
"""

from __future__ import annotations

from collections.abc import Callable

from mpcnode.core.errors import UsageError
from mpcnode.protocol.sign import SignatureShare
from mpcnode.state.policy_state import PolicyState


def sign_bare_digest(digest: bytes, policy: PolicyState,
                     sign: Callable[[bytes], SignatureShare]) -> SignatureShare:
    """σ_i on ``digest`` as given; the policy lock first, like the authorized path (a
    checkpoint calls the policy state under the store lock)."""
    if len(digest) != 32:
        raise UsageError(f"digest must be 32 bytes, got {len(digest)}")
    with policy.lock:
        return sign(digest)
