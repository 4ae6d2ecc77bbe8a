"""The audit anchor on chain: the OMS sends its signed tree heads' roots to ``AuditAnchor``
(contracts/AuditAnchor.sol), and an auditor reads them back with eth_getLogs.

Whoever holds the OMS database can rewrite the audit log with recomputed hashes and delete
its signed tree heads; a mined ``Anchored`` event cannot be taken back. Reading the events
needs nothing from the OMS: the contract address and a JSON-RPC endpoint.

The sending account (``AnchorAccount``) is a dedicated key that holds gas only, never the
custody key: it is on the OMS host, so an attacker there can anchor roots of a rewritten
log too, but cannot remove the anchors made before, and those no longer match. The
contract accepts anchors from its owner only, so nobody else can fill an auditor's view
with roots of a log that never existed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import coincurve
from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_abi.exceptions import DecodingError
from eth_account import Account

from ethereum.hashing import function_selector, keccak256
from ethereum.transactions import TYPE_EIP1559, UnsignedTx, rlp_encode
from oms_core.audit.verify import AnchoredRoot, log_id_hash
from oms_core.chain.artifacts import AUDIT_ANCHOR, load
from oms_core.chain.endpoints import CallRequest
from oms_core.chain.fees import estimate_fees
from oms_core.chain.node_manager import Confirmed, NodeManager
from oms_core.chain.web3_endpoint import Web3Endpoint
from oms_core.oms_core_errors import OmsCoreError

ANCHOR_SIGNATURE = "anchor(bytes32,uint64,bytes32)"
OWNER_SIGNATURE = "owner()"
ANCHORED_TOPIC = keccak256(b"Anchored(bytes32,uint64,bytes32)")
GAS_MARGIN = 5_000  # over eth_estimateGas: a cold storage read may cost more when mined
LOG_CHUNK_BLOCKS = 10_000  # eth_getLogs block range per call; public nodes cap the range


class AnchorError(OmsCoreError):
    """The anchor contract, account or chain is not usable as configured."""


@dataclass(frozen=True)
class Anchor:
    """One ``Anchored`` event as mined."""

    log_id_hash: bytes
    tree_size: int
    root_hash: bytes
    block_number: int
    tx_hash: bytes
    log_index: int

    @property
    def label(self) -> str:
        """How a verification defect names it: where an auditor finds it on chain."""
        return (f"anchor in block {self.block_number} tx 0x{self.tx_hash.hex()} "
                f"(size {self.tree_size})")

    def root(self) -> AnchoredRoot:
        """What ``verify_log`` checks the log against."""
        return AnchoredRoot(self.label, self.log_id_hash, self.tree_size, self.root_hash)


@dataclass(frozen=True)
class AnchorAccount:
    """The anchor account's key (an Ethereum keystore v3 file, decrypted at start)."""

    address: str  # lower-case 0x
    _key: bytes = field(repr=False)

    @classmethod
    def from_keystore(cls, path: Path, passphrase: bytes) -> AnchorAccount:
        try:
            keystore = json.loads(path.read_text(encoding="utf-8"))
            key = bytes(Account.decrypt(keystore, passphrase.decode("utf-8")))
        except OSError as exc:
            raise AnchorError(f"cannot read the anchor key file {path}: {exc.strerror}") \
                from None
        except ValueError as exc:  # bad JSON, wrong passphrase ("MAC mismatch")
            raise AnchorError(f"cannot decrypt the anchor key file {path}: {exc}") from None
        return cls.from_private_key(key)

    @classmethod
    def from_private_key(cls, key: bytes) -> AnchorAccount:
        public = coincurve.PrivateKey(key).public_key.format(compressed=False)[1:]
        return cls("0x" + keccak256(public)[-20:].hex(), key)

    def private_key(self) -> bytes:
        return self._key

    def sign(self, tx: UnsignedTx) -> bytes:
        """The broadcastable transaction; libsecp256k1 signs low-s, its recovery id is R's
        y-parity."""
        signature = coincurve.PrivateKey(self._key).sign_recoverable(tx.signing_digest(),
                                                                     hasher=None)
        return tx.signed_raw(int.from_bytes(signature[:32], "big"),
                             int.from_bytes(signature[32:64], "big"), signature[64])


def deploy_contract(endpoint: Web3Endpoint, account: AnchorAccount, *, chain_id: int,
                    timeout_s: float = 120.0) -> tuple[str, int]:
    """Deploy an ``AuditAnchor`` owned by ``account`` (which pays the gas); returns its
    address (Keccak(RLP(sender, nonce)), Yellow Paper §7) and block once mined. A creation
    transaction is outside ``UnsignedTx`` (which signs calls only): eth-account signs it."""
    creation = load(AUDIT_ANCHOR).bytecode
    sender = account.address
    fees = estimate_fees(endpoint)
    gas = endpoint.estimate_gas(CallRequest(sender, "", creation))
    nonce = endpoint.nonce(sender, pending=True)
    signed = Account.sign_transaction({
        "type": TYPE_EIP1559, "chainId": chain_id, "nonce": nonce,
        "data": "0x" + creation.hex(), "value": 0, "gas": gas + GAS_MARGIN,
        "maxFeePerGas": fees.max_fee_per_gas,
        "maxPriorityFeePerGas": fees.max_priority_fee_per_gas}, account.private_key())
    tx_hash = endpoint.send_raw_transaction(bytes(signed.raw_transaction))
    deadline = time.monotonic() + timeout_s
    while (receipt := endpoint.receipt(tx_hash)) is None:
        if time.monotonic() > deadline:
            raise AnchorError(f"AuditAnchor deployment 0x{tx_hash.hex()} not mined within "
                              f"{timeout_s:.0f} s")
        time.sleep(0.5)
    if receipt.status != 1:
        raise AnchorError(f"deploying AuditAnchor reverted in transaction 0x{tx_hash.hex()}")
    address = "0x" + keccak256(rlp_encode([bytes.fromhex(sender[2:]), nonce]))[-20:].hex()
    return address, receipt.block_number


def anchor_calldata(log_id: str, tree_size: int, root_hash: bytes) -> bytes:
    return function_selector(ANCHOR_SIGNATURE) + abi_encode(
        ["bytes32", "uint64", "bytes32"], [log_id_hash(log_id), tree_size, root_hash])


def check_contract(endpoint: Web3Endpoint, contract: str, caller: str | None = None) -> str:
    """The owner of the ``AuditAnchor`` at ``contract``; ``AnchorError`` unless the code
    there is byte for byte the committed artifact's (any other code could emit the same
    events for anyone). ``caller`` makes the owner() call (some chains want it funded)."""
    expected = load(AUDIT_ANCHOR, require_current_source=False).deployed_bytecode
    code = endpoint.code(contract)
    if code != expected:
        what = "no code" if not code else f"{len(code)} bytes of other code"
        raise AnchorError(f"{contract} on {endpoint.name} is not an AuditAnchor ({what})")
    answer = endpoint.call(CallRequest(caller or contract, contract,
                                       function_selector(OWNER_SIGNATURE)))
    try:
        (owner,) = abi_decode(["address"], answer)
    except DecodingError as exc:
        raise AnchorError(f"{contract}: owner() answered {answer.hex()!r}: {exc}") from None
    return str(owner).lower()


def read_anchors(endpoint: Web3Endpoint, contract: str, *, from_block: int = 0
                 ) -> list[Anchor]:
    """Every ``Anchored`` event of ``contract`` from ``from_block`` to the latest block, in
    chain order."""
    latest = endpoint.block(None).number
    anchors: list[Anchor] = []
    for start in range(from_block, latest + 1, LOG_CHUNK_BLOCKS):
        end = min(start + LOG_CHUNK_BLOCKS - 1, latest)
        for entry in endpoint.logs(contract, [ANCHORED_TOPIC], start, end):
            anchors.append(_anchor_of(entry, contract))
    return anchors


def _anchor_of(entry: dict[str, Any], contract: str) -> Anchor:
    try:
        topics = [bytes(t) for t in entry["topics"]]
        size, root = abi_decode(["uint64", "bytes32"], bytes(entry["data"]))
        anchor = Anchor(topics[1], int(size), bytes(root), int(entry["blockNumber"]),
                        bytes(entry["transactionHash"]), int(entry["logIndex"]))
    except (KeyError, IndexError, TypeError, ValueError, DecodingError) as exc:
        raise AnchorError(f"{contract}: malformed Anchored event {entry!r}: {exc}") from None
    if len(topics) != 2 or topics[0] != ANCHORED_TOPIC:
        raise AnchorError(f"{contract}: unexpected event topics in block "
                          f"{anchor.block_number}")
    return anchor


class AnchorSender:
    """Sends ``anchor(logId, treeSize, root)`` from the anchor account and waits until the
    endpoints agree it is confirmed. One anchor at a time: the next nonce is the pending
    one, so a transaction still in the pool is never replaced."""

    def __init__(self, endpoints: Sequence[Web3Endpoint], account: AnchorAccount,
                 contract: str, *, chain_id: int, confirmations: int,
                 max_fee_cap: int | None, timeout_s: float, poll_s: float) -> None:
        self.account = account
        self.contract = contract
        self._endpoint = endpoints[0]
        self._chain_id = chain_id
        self._manager = NodeManager(endpoints, chain_id=chain_id, confirmations=confirmations)
        self._max_fee_cap = max_fee_cap
        self._timeout_s = timeout_s
        self._poll_s = poll_s

    def check(self) -> None:
        """The endpoints serve the chain, the contract is an AuditAnchor, and the anchor
        account owns it (else every anchor would revert)."""
        self._manager.check_chain_ids()
        owner = check_contract(self._endpoint, self.contract, self.account.address)
        if owner != self.account.address:
            raise AnchorError(f"the AuditAnchor at {self.contract} is owned by {owner}, not "
                              f"by the anchor account {self.account.address}")

    def anchor(self, log_id: str, tree_size: int, root_hash: bytes) -> tuple[bytes, int]:
        """Anchor one root; returns (transaction hash, block number) once confirmed."""
        data = anchor_calldata(log_id, tree_size, root_hash)
        sender = self.account.address
        gas = self._endpoint.estimate_gas(CallRequest(sender, self.contract, data))
        fees = estimate_fees(self._endpoint, max_fee_cap=self._max_fee_cap)
        tx = UnsignedTx(TYPE_EIP1559, self._chain_id,
                        self._endpoint.nonce(sender, pending=True),
                        bytes.fromhex(self.contract[2:]), 0, data, gas + GAS_MARGIN,
                        max_fee_per_gas=fees.max_fee_per_gas,
                        max_priority_fee_per_gas=fees.max_priority_fee_per_gas)
        raw = self.account.sign(tx)
        tx_hash = self._manager.broadcast(raw)
        outcome = self._manager.wait_confirmed(tx_hash, timeout_s=self._timeout_s,
                                               poll_s=self._poll_s, rebroadcast_raw=raw)
        if not isinstance(outcome, Confirmed):
            raise AnchorError(f"anchor transaction 0x{tx_hash.hex()} {outcome}")
        return tx_hash, outcome.block_number

