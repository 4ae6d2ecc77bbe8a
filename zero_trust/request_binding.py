"""One request id binds one transaction (DESIGN §4).

A verifier (a signer node) remembers, for every request id it signed under, what it
signed: the key, the derivation path and the digest, and for a transaction the facts a
replacement must keep (chain, nonce) or raise (fees). A later request under the same id
is refused unless it is the very same signature (a retry on another presignature);
otherwise one set of approvals, obtained for one transfer, would let a hostile
coordinator sign any number of transfers under that id.

A stuck transaction is replaced as the OMS does it (``oms_core/app/requests/
request_intake.py``): a new request, approved afresh, whose signed request names the old
one in ``replaces``. Its approvals therefore name it as that request's replacement, and a
verifier that signed the old request checks that the new transaction really is a
replacement — same key, path, chain and nonce (so at most one of the two can ever be
mined) and every fee strictly higher. A verifier that never signed the old request has
nothing to compare and treats the replacement as the ordinary, fully approved request it is.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from ethereum.transactions import UnsignedTx
from mpcnode.core.canonical_json import canonical_json


@dataclass(frozen=True)
class RequestBinding:
    """What one request id was signed for. ``nonce`` is None for a raw digest; the fees
    are the transaction's fee cap and tip per gas (a legacy gas price is both)."""

    key_id: str  # hex
    path: tuple[int, ...]
    digest: str  # hex
    chain_id: int | None = None
    nonce: int | None = None
    fee_cap: int = 0
    tip: int = 0

    def same_signature(self, other: RequestBinding) -> bool:
        return (self.key_id, self.path, self.digest) == (other.key_id, other.path,
                                                          other.digest)

    def to_json(self) -> bytes:
        """Canonical JSON; the integers as decimal text (fees may exceed 2**53)."""
        return canonical_json({"key_id": self.key_id, "path": list(self.path),
                               "digest": self.digest, "chain_id": _text(self.chain_id),
                               "nonce": _text(self.nonce), "fee_cap": str(self.fee_cap),
                               "tip": str(self.tip)})

    @classmethod
    def from_json(cls, raw: str | bytes) -> RequestBinding:
        doc = json.loads(raw)
        return cls(str(doc["key_id"]), tuple(int(p) for p in doc["path"]), str(doc["digest"]),
                   _int_or_none(doc["chain_id"]), _int_or_none(doc["nonce"]),
                   int(str(doc["fee_cap"])), int(str(doc["tip"])))


def _text(value: int | None) -> str | None:
    return None if value is None else str(value)


def _int_or_none(value: object) -> int | None:
    return None if value is None else int(str(value))


def binding_of(key_id: bytes, path: tuple[int, ...], digest: bytes,
               tx: UnsignedTx | None) -> RequestBinding:
    if tx is None:
        return RequestBinding(key_id.hex(), path, digest.hex())
    fee_cap = tx.max_fee_per_gas or tx.gas_price
    tip = tx.max_priority_fee_per_gas or tx.gas_price
    return RequestBinding(key_id.hex(), path, digest.hex(), tx.chain_id, tx.nonce, fee_cap, tip)


def binding_refusal(request_id: str, new: RequestBinding, prior: RequestBinding | None,
                    replaces: str, replaced: RequestBinding | None) -> str | None:
    """Why ``new`` may not be signed under ``request_id`` (None: it may). ``prior`` is what
    this verifier signed under ``request_id`` before, ``replaced`` what it signed under
    ``replaces`` (the request the approvals name as replaced, "" for none)."""
    if prior is not None and not prior.same_signature(new):
        return (f'request "{request_id}" is bound to another transaction: this signer '
                f"already signed digest {prior.digest[:16]}… under it; a different "
                "transaction needs its own request (a fee-bumped replacement names this "
                "one as the request it replaces)")
    if not replaces:
        return None
    if replaces == request_id:
        return f'request "{request_id}" names itself as the request it replaces'
    if new.nonce is None:
        return "only a transaction can replace another (a raw digest cannot)"
    if replaced is None:
        return None  # this signer never signed the replaced request: nothing to compare
    if replaced.nonce is None or (replaced.key_id, replaced.path, replaced.chain_id,
                                  replaced.nonce) != (new.key_id, new.path, new.chain_id,
                                                      new.nonce):
        return (f'request "{request_id}" is no replacement of "{replaces}": a replacement '
                "keeps the key, the path, the chain and the nonce of the transaction it "
                "replaces (so that at most one of them can be mined)")
    if not (new.fee_cap > replaced.fee_cap and new.tip > replaced.tip):
        return (f'request "{request_id}" is no replacement of "{replaces}": a replacement '
                f"raises every fee (fee cap {replaced.fee_cap} → {new.fee_cap}, tip "
                f"{replaced.tip} → {new.tip} wei per gas)")
    return None
