"""Zero-trust authorization of one signature (DESIGN §4), the same code in the OMS and in
every signer node.

A node releases σ_i only when this function, run on the node's own copy of the signed
policy bundle and its own state (sign counters, its 24-hour ledger), says the policy
allows it. Nothing the OMS or the coordinator claims is taken on trust:

- the digest is recomputed from the full unsigned transaction;
- asset, amount, destination and called function are read from the transaction itself;
- the initiator's identity and roles come from the approver registry in the bundle, and
  the initiator proves the request with their own WebAuthn assertion;
- approvals are WebAuthn assertions over ``approval_challenge(canonical request, bundle
  hash, request id, deadline)``, verified against the registry, with strictly increasing
  counters, and refused after the deadline (the OMS request's) by the verifier's clock;
- one request id binds one transaction (``request_binding``): a different digest under an
  id this verifier already signed for is refused, and a replacement must be one;
- the USD value uses ``max(quoted price, the bundle's signed floor)``, so a lying price
  can only make a request look bigger;
- the rolling 24-hour usage is the verifier's own ledger, not the OMS's.

EIP-712 typed data and EIP-191 personal messages travel as a structured ``message``
(``signed_message``): the digest is computed from it, and the policy reads its fields
(``intent.typed_data_intent``). Contract calls to whitelisted contracts are decoded with
the ABI the signed policy holds, and their recipient and spender arguments are checked
against the signing wallet's own address (``wallet``, which the verifier derives itself)
and the address book.

Raw-digest signing (no transaction, no message) is only possible under a rule marked ``raw_digest``
for this key and path, with the highest approval quorum; it counts the rule's stated USD
value against the limits.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache

from ethereum.transactions import TransactionError, UnsignedTx, decode_unsigned, keccak_digest
from mpcnode.core.canonical_json import CanonicalJSONError, canonical_json, parse_json
from zero_trust.approvals.approval_errors import ApprovalError
from zero_trust.approvals.approver_registry import ApproverRegistry
from zero_trust.approvals.assertion import Approval, VerifiedApproval, verify_approval
from zero_trust.approvals.challenge import approval_challenge
from zero_trust.intent import (
    NO_DESTINATION,
    Intent,
    IntentError,
    intent_of,
    personal_message_intent,
    typed_data_intent,
)
from zero_trust.policy.approval_quorum import approvals_satisfied
from zero_trust.policy.bundle import PolicyBundle
from zero_trust.policy.document import NATIVE, Action, Policy, RequestKind
from zero_trust.policy.evaluate import Decision, PolicyInput, evaluate
from zero_trust.policy.policy_errors import PolicyDenied, PolicyError
from zero_trust.policy.usd import parse_usd
from zero_trust.request_binding import RequestBinding, binding_of, binding_refusal
from zero_trust.signed_message import MessageError, SignedMessage, parse_message
from zero_trust.zero_trust_errors import ZeroTrustError

REGISTRY_FORMAT = "oms-approver-registry/1"
RAW_DIGEST_DESTINATION = NO_DESTINATION  # placeholder: a raw digest has no destination
MAX_APPROVALS = 16
MAX_CLOCK_SKEW_S = 30
"""How far a verifier's clock may be behind the OMS's: a verifier refuses approvals
``MAX_CLOCK_SKEW_S`` seconds after their deadline by its own clock, never later. Signer
nodes keep their clocks within this of UTC (NTP); the deadline binds to within it."""
MAX_APPROVAL_LIFETIME_S = 7 * 86400
"""The furthest ahead a deadline may lie: approvals valid for ever would be no expiry at
all. The OMS's request time-to-live (``request_ttl_seconds``) must not exceed it."""


class AuthorizationDenied(ZeroTrustError):  # noqa: N818 - it is a verdict, named as users read it
    """The signed policy does not allow this signature; the message says why."""


@dataclass(frozen=True)
class RelyingParty:
    """Where approvers' WebAuthn assertions must come from (fixed in the signed bundle)."""

    rp_id: str
    origin: str


def registry_blob(rp: RelyingParty, registry: ApproverRegistry) -> bytes:
    """The approver-registry part of a policy bundle: relying party plus registry."""
    doc = {"format": REGISTRY_FORMAT, "rp_id": rp.rp_id, "origin": rp.origin,
           "registry": registry.to_dict()}
    return canonical_json(doc)


def parse_registry_blob(blob: bytes) -> tuple[RelyingParty, ApproverRegistry]:
    try:
        doc = parse_json(blob)  # bounded nesting: never a RecursionError
    except CanonicalJSONError as exc:
        raise AuthorizationDenied(f"approver registry in the bundle is not JSON: {exc}") from None
    if not isinstance(doc, dict) or set(doc) != {"format", "rp_id", "origin", "registry"} \
            or doc["format"] != REGISTRY_FORMAT:
        raise AuthorizationDenied(f"approver registry is not in format {REGISTRY_FORMAT}")
    rp_id, origin = doc["rp_id"], doc["origin"]
    if not isinstance(rp_id, str) or not isinstance(origin, str) or not rp_id or not origin:
        raise AuthorizationDenied("approver registry names no relying party")
    return RelyingParty(rp_id, origin), ApproverRegistry.from_dict(doc["registry"])


NONCE_AT_SIGNING = "at_signing"
"""The ``nonce`` of a version-4 signing request: the approvals bind every field of the
transaction but its nonce, which the OMS picks when it signs (``docs/nonces.md``)."""


@dataclass(frozen=True)
class SigningRequest:
    """Everything the approvals bind, as the node receives it."""

    request_id: str  # the OMS request id
    key_id: bytes
    path: tuple[int, ...]
    transaction: bytes  # unsigned transaction; b"" for a raw digest
    digest: bytes  # what will be signed (recomputed from the transaction when present)
    initiator: str
    usd_price: str  # decimal text, per whole unit of the transaction's asset
    expires_at: int  # the OMS request's deadline, epoch seconds: no signature after it
    replaces: str = ""  # the request this one replaces (a fee-bumped stuck transaction)
    message: bytes = b""  # canonical typed data / personal message (signed_message); b""
    # for a transaction or a raw digest
    # True: the approvals bind the transaction without its nonce (version 4); the nonce
    # in ``transaction`` is the one being signed, chosen at signing time.
    nonce_at_signing: bool = False

    def canonical(self) -> bytes:
        """The bytes every assertion's challenge commits to: canonical JSON, ASCII only (its
        text was always written with ``\\u`` escapes, which RFC 8785 would not write).

        A request without a deadline (``expires_at`` 0) is one recorded before approvals
        expired (version 1); it is kept readable, but no challenge exists for it and no
        node signs it. Version 4 (``nonce_at_signing``) writes the transaction with nonce 0
        and no digest: the challenge is the same whatever nonce the transaction is signed
        with, and every node signs one nonce per request id (``request_binding``)."""
        if self.nonce_at_signing:
            if self.message:
                raise CanonicalJSONError("a message has no nonce to choose at signing")
            return canonical_json({
                "v": 4, "request_id": self.request_id, "key_id": self.key_id.hex(),
                "path": list(self.path), "transaction": _nonce_zero(self.transaction).hex(),
                "nonce": NONCE_AT_SIGNING, "initiator": self.initiator,
                "usd_price": self.usd_price, "expires_at": self.expires_at,
                "replaces": self.replaces}, ascii_only=True)
        doc: dict[str, object] = {
            "v": 1, "request_id": self.request_id, "key_id": self.key_id.hex(),
            "path": list(self.path), "transaction": self.transaction.hex(),
            "digest": self.digest.hex(), "initiator": self.initiator,
            "usd_price": self.usd_price}
        if self.expires_at or self.replaces or self.message:
            doc.update(v=2, expires_at=self.expires_at, replaces=self.replaces)
        if self.message:  # version 3: a structured message, as its canonical text
            if not self.message.isascii():  # canonical messages are ASCII; never lossy
                raise CanonicalJSONError("the message is not ASCII canonical JSON")
            doc.update(v=3, message=self.message.decode("ascii"))
        return canonical_json(doc, ascii_only=True)

    @classmethod
    def from_canonical(cls, raw: bytes) -> SigningRequest:
        doc = json.loads(raw)
        late = doc.get("nonce") == NONCE_AT_SIGNING
        transaction = bytes.fromhex(doc["transaction"])
        request = cls(doc["request_id"], bytes.fromhex(doc["key_id"]), tuple(doc["path"]),
                      transaction,
                      keccak_digest(transaction) if late else bytes.fromhex(doc["digest"]),
                      doc["initiator"], doc["usd_price"], doc.get("expires_at", 0),
                      doc.get("replaces", ""), str(doc.get("message", "")).encode("ascii"),
                      nonce_at_signing=late)
        if request.canonical() != raw:
            raise ValueError("not a canonical signing request")
        return request

    def with_nonce(self, nonce: int) -> SigningRequest:
        """The version-4 request as signed with ``nonce``: same challenge, the
        transaction and its digest with that nonce."""
        if not self.nonce_at_signing:
            raise ValueError("only a request whose nonce is chosen at signing takes one")
        tx = replace(decode_unsigned(self.transaction), nonce=nonce)
        return replace(self, transaction=tx.encode(), digest=tx.signing_digest())

    def challenge(self, bundle_hash: str) -> bytes:
        return approval_challenge(self.canonical(), bytes.fromhex(bundle_hash),
                                  self.request_id, self.expires_at)


def _nonce_zero(transaction: bytes) -> bytes:
    """The unsigned transaction with nonce 0: what a version-4 challenge binds."""
    try:
        return replace(decode_unsigned(transaction), nonce=0).encode()
    except TransactionError as exc:
        raise CanonicalJSONError(f"a request whose nonce is chosen at signing needs a "
                                 f"transaction: {exc}") from None


@dataclass(frozen=True)
class Verdict:
    """An allowed signature: what to sign and what the verifier must now remember."""

    digest: bytes
    decision: Decision
    approved_by: str
    usd_amount: Decimal
    counters: Mapping[bytes, int]  # credential id → new sign counter
    binding: RequestBinding  # what the request id is now bound to


@dataclass(frozen=True)
class Signable:
    """What a request signs, decoded: a transaction, a structured message, or neither (a
    raw digest); ``digest`` computed from it."""

    digest: bytes
    tx: UnsignedTx | None
    message: SignedMessage | None


def signable(request: SigningRequest) -> Signable:
    """The request's transaction or message, decoded, and the digest computed from it (a
    digest the request states must equal it)."""
    if request.message:
        if request.transaction:
            raise AuthorizationDenied("a request signs a transaction or a message, not both")
        try:
            message = parse_message(request.message)
        except MessageError as exc:
            raise AuthorizationDenied(f"message refused: {exc}") from None
        computed = message.digest()
        if request.digest and request.digest != computed:
            raise AuthorizationDenied(f"the digest is not the hash of the {message.kind.value} "
                                      "message")
        return Signable(computed, None, message)
    digest, tx = signing_digest(request.transaction, request.digest)
    return Signable(digest, tx, None)


def signing_digest(transaction: bytes, digest: bytes) -> tuple[bytes, UnsignedTx | None]:
    """The digest to sign — Keccak of the unsigned transaction, or a raw 32-byte digest —
    and the decoded transaction."""
    if transaction:
        try:
            tx = decode_unsigned(transaction)
        except TransactionError as exc:
            raise AuthorizationDenied(f"transaction refused: {exc}") from None
        computed = keccak_digest(transaction)
        if digest and digest != computed:
            raise AuthorizationDenied("the digest is not the hash of the transaction")
        return computed, tx
    if len(digest) != 32:
        raise AuthorizationDenied("a raw-digest request needs a 32-byte digest")
    return digest, None


@lru_cache(maxsize=8)
def _registry(blob: bytes) -> tuple[RelyingParty, ApproverRegistry]:
    return parse_registry_blob(blob)


def authorize(bundle: PolicyBundle, request: SigningRequest, approvals: Sequence[bytes], *,
              policy_hash: str, now: float, usage_24h_usd: Decimal,
              last_counters: Mapping[bytes, int], bound: Mapping[str, RequestBinding],
              cooldown_from: Mapping[str, int] | None = None, wallet: str = "") -> Verdict:
    """Allow the signature or raise AuthorizationDenied / PolicyDenied saying why.
    ``wallet``: the address of ``request.key_id`` at ``request.path``, derived by the
    verifier (a recipient argument may be the wallet itself); "" if unknown.
    ``bound`` holds what this verifier already signed under ``request.request_id`` and
    under ``request.replaces`` (by request id; absent when it signed nothing there).
    ``cooldown_from``: when this verifier first held each address-book entry (by label)
    under an admin-signed bundle (``evaluate``)."""
    if policy_hash != bundle.bundle_hash:
        raise AuthorizationDenied(
            f"stale or unknown policy: request was evaluated under {policy_hash[:16] or '-'}…, "
            f"this signer holds policy v{bundle.version} ({bundle.bundle_hash[:16]}…)")
    check_deadline(request.expires_at, now)
    if request.nonce_at_signing and request.replaces:
        raise AuthorizationDenied("a replacement keeps the nonce of the transaction it "
                                  "replaces: its approvals must bind that nonce")
    what = signable(request)
    digest = what.digest
    binding = binding_of(request.key_id, request.path, digest, what.tx)
    refusal = binding_refusal(request.request_id, binding, bound.get(request.request_id),
                              request.replaces,
                              bound.get(request.replaces) if request.replaces else None)
    if refusal is not None:
        raise AuthorizationDenied(refusal)
    rp, registry = _registry(bundle.approver_registry)
    initiator = registry.find(request.initiator)
    if initiator is None:
        raise AuthorizationDenied(f'initiator "{request.initiator}" is not in the registry')
    verified = _verified(approvals, registry, rp, request, bundle.bundle_hash, last_counters)
    if not any(v.user_id == request.initiator for v in verified):
        raise AuthorizationDenied(
            f'no valid assertion from the initiator "{request.initiator}" over this request')
    decision = evaluate(bundle.policy, policy_input(bundle.policy, request, what, frozenset(
        r.value for r in initiator.roles), wallet), now=now, usage_24h_usd=usage_24h_usd,
        cooldown_from=cooldown_from)
    decision.raise_if_blocked()
    if decision.action is not Action.ALLOW:
        # The initiator's assertion proves the request; it never counts as an approval.
        ok, why = approvals_satisfied(
            decision, [(v.user_id, frozenset(r.value for r in v.roles)) for v in verified
                       if v.user_id != request.initiator], request.initiator)
        if not ok:
            raise PolicyDenied(decision.rule, f"{decision.reason}; approvals missing: {why}")
    else:
        why = "no approvals required"
    assert decision.usd_amount is not None  # a listed asset is always valued
    return Verdict(digest, decision, why, decision.usd_amount,
                   {v.credential_id: v.new_counter for v in verified}, binding)


def check_deadline(expires_at: int, now: float) -> None:
    """Refuse approvals past their deadline (by ``now``, the verifier's clock, allowing
    ``MAX_CLOCK_SKEW_S``) or with a deadline too far ahead to be one."""
    if isinstance(expires_at, bool) or not isinstance(expires_at, int) or expires_at <= 0:
        raise AuthorizationDenied("the request carries no deadline: approvals must expire")
    if now > expires_at + MAX_CLOCK_SKEW_S:
        raise AuthorizationDenied(
            f"the approvals expired at {_utc(expires_at)} (the request's deadline; this "
            f"signer's clock reads {_utc(now)}, {MAX_CLOCK_SKEW_S} s of skew allowed)")
    if expires_at > now + MAX_APPROVAL_LIFETIME_S:
        raise AuthorizationDenied(
            f"the request's deadline {_utc(expires_at)} is more than "
            f"{MAX_APPROVAL_LIFETIME_S // 86400} days ahead: approvals must expire")


def _utc(epoch: float) -> str:
    try:
        return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (OverflowError, ValueError, OSError):
        return f"{epoch:.0f} (epoch seconds, beyond the calendar)"


def _verified(approvals: Sequence[bytes], registry: ApproverRegistry, rp: RelyingParty,
              request: SigningRequest, bundle_hash: str,
              last_counters: Mapping[bytes, int]) -> list[VerifiedApproval]:
    if len(approvals) > MAX_APPROVALS:
        raise AuthorizationDenied(f"more than {MAX_APPROVALS} approvals")
    try:
        challenge = request.challenge(bundle_hash)
    except CanonicalJSONError as exc:
        raise AuthorizationDenied(f"the signing request has no canonical form: {exc}") from None
    out: list[VerifiedApproval] = []
    seen: set[bytes] = set()
    for raw in approvals:
        try:
            approval = Approval.from_json(raw)
            v = verify_approval(approval, registry, rp_id=rp.rp_id, origin=rp.origin,
                                expected_challenge=challenge, last_counters=last_counters)
        except ApprovalError as exc:
            raise AuthorizationDenied(str(exc)) from None
        if v.credential_id in seen:
            raise AuthorizationDenied(f'approval by "{v.user_id}" presented twice')
        seen.add(v.credential_id)
        out.append(v)
    return out


def policy_input(policy: Policy, request: SigningRequest, what: Signable,
                 roles: frozenset[str], wallet: str = "") -> PolicyInput:
    """The request as the evaluator reads it: the same function in the OMS and in every
    verifier, from the signed bytes alone (``wallet`` is the verifier's own)."""
    try:  # the OMS's text, read like any amount: no exponent to overflow the valuation
        price = parse_usd(request.usd_price or "0")
    except ValueError as exc:
        raise AuthorizationDenied(f"usd price {exc}") from None
    if what.tx is None and what.message is None:
        native = policy.assets[0].symbol if policy.assets else "-"
        return PolicyInput(request.request_id, request.initiator, roles, native, 0, price,
                           RAW_DIGEST_DESTINATION, None, raw_digest=True,
                           key_id=request.key_id.hex(), path=request.path)
    try:
        intent = intent_of_signable(policy, what)
        return PolicyInput(request.request_id, request.initiator, roles, intent.asset,
                           intent.amount, price, intent.destination, intent.function_selector,
                           key_id=request.key_id.hex(), path=request.path, kind=intent.kind,
                           checks=intent.checks, wallet=wallet.lower(),
                           typed_data=intent.typed_data)
    except IntentError as exc:
        raise AuthorizationDenied(f"{_noun(what)} refused: {exc}") from None
    except PolicyError as exc:
        raise AuthorizationDenied(str(exc)) from None


def intent_of_signable(policy: Policy, what: Signable) -> Intent:
    """What a transaction or a structured message does, as the policy reads it
    (``IntentError`` when it cannot say)."""
    if what.tx is not None:
        return intent_of(what.tx, policy.assets, policy.address_book)
    assert what.message is not None
    if what.message.typed_data is not None:
        return typed_data_intent(what.message.typed_data, policy)
    native = next((a for a in policy.assets if a.contract == NATIVE), None)
    if native is None:
        raise IntentError("the policy lists no native asset")
    return personal_message_intent(policy, native.chain_id)


def _noun(what: Signable) -> str:
    return "transaction" if what.message is None else (
        "typed data" if what.message.kind is RequestKind.TYPED_DATA else "personal message")
