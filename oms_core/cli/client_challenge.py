"""What a client signs for a request: the challenge it computes itself.

The server sends the canonical signing request with every request view. The client
decodes the transaction from it, checks that the digest is that transaction's, that the
request is the one asked for, and that the view describes this transaction, then derives
the WebAuthn challenge from the signing request and the policy hash. A compromised OMS
that showed one transfer and asked for an assertion over another is caught here, before
the person's authenticator signs anything; the server's own ``challenge`` field must
agree, or the client refuses. The challenge binds the request's deadline, which the
description shows: after it no signer node accepts the assertion.

A request for EIP-712 typed data or a personal message is checked the same way: the
client computes the message's digest itself and shows the message (its domain, type and
fields, or its text) rather than a transaction.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from ethereum import erc20
from ethereum.transactions import UnsignedTx, decode_unsigned
from oms_core.oms_core_errors import OmsCoreError
from oms_core.rpc import oms_pb2 as pb
from zero_trust.authorization import SigningRequest
from zero_trust.signed_message import MessageError, SignedMessage, parse_message

_TOKEN_VERBS = {erc20.TRANSFER: "transfer", erc20.TRANSFER_FROM: "transferFrom",
                erc20.APPROVE: "approve", erc20.INCREASE_ALLOWANCE: "increaseAllowance"}


class ChallengeCheckError(OmsCoreError):
    """The request view does not hold together: nothing is signed."""


@dataclass(frozen=True)
class ToSign:
    challenge: bytes
    transaction: UnsignedTx | None
    expires_at: int  # epoch seconds: the nodes refuse the assertion after it
    message: SignedMessage | None = None  # typed data or a personal message instead
    nonce_at_signing: bool = False  # the OMS picks the nonce when it signs (one per request)

    def describe(self) -> str:
        """One line a person can check before touching the authenticator."""
        text = _describe_message(self.message) if self.message is not None else (
            _describe_tx(self.transaction, self.nonce_at_signing)
            if self.transaction is not None else "")
        until = datetime.fromtimestamp(self.expires_at, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")
        return f"{text}; valid until {until}"


def _describe_tx(tx: UnsignedTx, nonce_at_signing: bool = False) -> str:
    nonce = "chosen at signing" if nonce_at_signing else str(tx.nonce)
    text = (f"chain {tx.chain_id}, nonce {nonce}, to {tx.to_address}, "
            f"value {tx.value} wei")
    try:
        call = erc20.decode(tx.data)
    except erc20.CallDecodeError:
        call = None
    if call is not None:
        verb = _TOKEN_VERBS[call.selector]
        text += f", token {verb} of {call.amount} base units to {call.counterparty_address}"
    elif tx.data:
        text += f", call 0x{tx.data[:4].hex()} with {len(tx.data)} bytes of data"
    return text


def _describe_message(message: SignedMessage) -> str:
    if message.typed_data is None:
        try:
            return f"personal message {message.data.decode('utf-8')!r}"
        except UnicodeDecodeError:
            return f"personal message 0x{message.data.hex()}"
    data = message.typed_data
    fields = json.dumps(data.message, default=_json_value, sort_keys=True)
    return (f"EIP-712 {data.primary_type} on chain {data.domain.get('chainId')} for "
            f"{data.domain.get('verifyingContract')}: {fields}")


def _json_value(value: object) -> str:
    return "0x" + value.hex() if isinstance(value, bytes) else str(value)


def challenge_to_sign(view: pb.RequestView, request_id: str) -> ToSign:
    """The challenge for ``request_id``, from the signing request in ``view``."""
    if not view.challenge:
        raise ChallengeCheckError(f"request {request_id} is {view.state or 'unknown'}: it "
                                  "awaits no assertion")
    try:
        signing = SigningRequest.from_canonical(view.signing_request)
        message = parse_message(signing.message) if signing.message else None
        tx = None if message is not None else decode_unsigned(signing.transaction)
        policy_hash = bytes.fromhex(view.policy_hash)
    except (ValueError, KeyError, TypeError, json.JSONDecodeError, MessageError) as exc:
        raise ChallengeCheckError(f"request {request_id}: the server sent no valid "
                                  f"signing request ({exc})") from None
    if signing.request_id != request_id or view.request_id != request_id:
        raise ChallengeCheckError(f"asked for request {request_id}, the server sent "
                                  f"{view.request_id} / {signing.request_id}")
    digest = message.digest() if message is not None else (
        tx.signing_digest() if tx is not None else b"")
    if digest != signing.digest or view.transaction != signing.transaction:
        raise ChallengeCheckError(f"request {request_id}: the digest or the transaction "
                                  "shown is not the one the approvals would bind")
    if tx is not None and view.destination.lower() not in _destinations(tx):
        raise ChallengeCheckError(f"request {request_id}: the view names destination "
                                  f"{view.destination}, the transaction pays elsewhere")
    if len(policy_hash) != 32:
        raise ChallengeCheckError(f"request {request_id}: malformed policy hash")
    if not signing.expires_at:
        raise ChallengeCheckError(f"request {request_id}: the signing request binds no "
                                  "deadline; no node would sign it")
    challenge = signing.challenge(view.policy_hash)
    if challenge != view.challenge:
        raise ChallengeCheckError(f"request {request_id}: the server's challenge is not the "
                                  "one this transaction and policy yield; refusing to sign")
    return ToSign(challenge, tx, signing.expires_at, message, signing.nonce_at_signing)


def _destinations(tx: UnsignedTx) -> set[str]:
    """Where the transaction sends value: the recipient, a token's recipient or spender."""
    out = {tx.to_address.lower()}
    try:
        call = erc20.decode(tx.data)
    except erc20.CallDecodeError:
        call = None
    if call is not None:
        out.add(call.counterparty_address.lower())
    return out
