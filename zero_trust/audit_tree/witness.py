"""What a witness of the OMS audit log accepts as the log's next signed tree head.

The signer nodes witness the log (DESIGN §4, §6): every sign request carries the OMS's
newest signed tree head and an RFC 6962 consistency proof from the head the node accepted
last. A node accepts the new head only if the OMS audit key signed it, it is of the same
log, it covers at least as many entries, and the proof shows the old tree is a prefix of
the new one; it then keeps the new head. So once a node has seen a head, no rewrite of
the entries it covers and no truncation below it can be shown to that node again, and an
auditor holding the node's head (``oms audit verify --witness``) detects the rewrite even
when every tree head in the OMS database was deleted.

A head must also be fresh (``check_head_age``): dated no more than the configured
maximum age before the witness's own clock, and not after it by more than that. An OMS
that kept showing the nodes an old head (and never the newest, which would cover what it
did since) is refused as soon as that head ages out; the OMS signs a fresh head for every
sign request, so an honest one never meets the limit.

The first head a node sees is taken on trust (trust on first use): before it there is
nothing to be consistent with. An operator who wants no first use to trust pins a head
the auditors hold (``mpcnode witness-pin``): the node then starts from it.
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from zero_trust.audit_tree.audit_tree_errors import (
    MerkleProofError,
    TreeHeadError,
    WitnessRefused,
)
from zero_trust.audit_tree.merkle import MAX_PROOF_NODES, verify_consistency
from zero_trust.audit_tree.tree_head import SignedTreeHead


def check_head_age(new: SignedTreeHead, now_s: float, max_age_s: float) -> None:
    """Raise ``WitnessRefused`` unless ``new`` is dated within ``max_age_s`` of ``now_s``
    (the witness's clock) in either direction: a head from the future would stay "fresh"
    for as long as the OMS host chose when it signed it."""
    age_s = now_s - new.timestamp_ms / 1000
    if age_s > max_age_s:
        raise WitnessRefused(f"audit tree head refused: it is {age_s:.0f} s old, more than "
                             f"the {max_age_s:.0f} s this node accepts (a stale head held "
                             "back from the newest?)")
    if -age_s > max_age_s:
        raise WitnessRefused(f"audit tree head refused: it is dated {-age_s:.0f} s ahead of "
                             f"this node's clock, more than {max_age_s:.0f} s")


def check_next_head(witnessed: SignedTreeHead | None, new: SignedTreeHead,
                    proof: Sequence[bytes], audit_key: Ed25519PublicKey, *,
                    now_s: float | None = None, max_age_s: float | None = None) -> bool:
    """Raise ``WitnessRefused`` unless ``new`` may follow ``witnessed`` (the head this
    witness holds, None if none); return True if ``new`` should replace it (it is not the
    very head already held). With ``now_s`` and ``max_age_s`` the head must also be fresh
    (``check_head_age``), checked once its signature holds: a forged head has no age."""
    try:
        new.verify(audit_key)
    except TreeHeadError as exc:
        raise WitnessRefused(f"audit tree head refused: {exc}") from None
    if now_s is not None and max_age_s is not None:
        check_head_age(new, now_s, max_age_s)
    if len(proof) > MAX_PROOF_NODES:
        raise WitnessRefused(f"audit tree head refused: a consistency proof has at most "
                             f"{MAX_PROOF_NODES} nodes, got {len(proof)}")
    if witnessed is None:
        return True
    if new == witnessed:
        return False  # the head already held (a retried request): whatever the proof says
    if new.log_id != witnessed.log_id:
        raise WitnessRefused(f"audit tree head refused: it is of log {new.log_id!r}, this "
                             f"node witnesses log {witnessed.log_id!r}")
    if new.tree_size < witnessed.tree_size:
        raise WitnessRefused(f"audit tree head refused: it covers {new.tree_size} entries, "
                             f"older than the head of {witnessed.tree_size} entries this "
                             "node witnessed (log rolled back?)")
    if new.timestamp_ms < witnessed.timestamp_ms:
        raise WitnessRefused(f"audit tree head refused: it is dated before the head of "
                             f"{witnessed.tree_size} entries this node witnessed")
    try:
        verify_consistency(witnessed.tree_size, new.tree_size, witnessed.root_hash,
                           new.root_hash, proof)
    except MerkleProofError as exc:
        raise WitnessRefused(f"audit tree head refused: the log of {new.tree_size} entries "
                             f"is not consistent with the head of {witnessed.tree_size} "
                             f"entries this node witnessed (log rewritten?): {exc}") from None
    return True
