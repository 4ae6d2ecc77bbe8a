"""``Endpoint`` over a ``web3.Web3``: a JSON-RPC node over HTTP (anvil in the tests, a real
node in production) or the embedded eth-tester chain, behind one set of exceptions.

Callers see only the exceptions of endpoints.py: a revert is ``CallReverted`` carrying the
contract's own reason (decoded from the Error(string) / Panic(uint256) revert data), and any
other failure — transport, the node's JSON-RPC error, or the in-process backend's own
exception types — is ``EndpointError``. Web3's built-in request retries are switched off:
retry policy belongs to the node manager, which also cross-checks endpoints.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from typing import Any, TypeVar, cast

from eth_abi.abi import decode as abi_decode
from eth_abi.exceptions import DecodingError
from eth_tester.exceptions import TransactionFailed
from hexbytes import HexBytes
from web3 import Web3
from web3.exceptions import (
    BlockNotFound,
    ContractLogicError,
    TransactionNotFound,
    Web3RPCError,
)
from web3.types import BlockIdentifier, FilterParams, TxParams

from ethereum.addresses import checksummed
from ethereum.hashing import keccak256
from oms_core.chain.endpoints import Block, CallRequest, CallReverted, EndpointError, Receipt

T = TypeVar("T")

ERROR_SELECTOR = bytes.fromhex("08c379a0")  # Error(string)
PANIC_SELECTOR = bytes.fromhex("4e487b71")  # Panic(uint256)
REVERT_PREFIX = "execution reverted"

# Solidity panic codes (docs: "Panic via assert and Error via require").
PANIC_REASONS = {
    0x01: "assertion failed",
    0x11: "arithmetic overflow or underflow",
    0x12: "division or modulo by zero",
    0x21: "invalid enum value",
    0x22: "corrupt storage byte array",
    0x31: "pop from an empty array",
    0x32: "array index out of bounds",
    0x41: "out of memory",
    0x51: "call to an uninitialised function",
}


class TransactionRejected(EndpointError):  # noqa: N818 - what the node said
    """The node answered and refused the transaction (bad nonce, fee too low, insufficient
    funds, malformed bytes). Sending the same bytes again will not change the answer."""


def revert_reason(data: bytes) -> str:
    """The human-readable reason of revert data, as the OMS shows it to people."""
    if not data:
        return "reverted without a reason"
    try:
        if data[:4] == ERROR_SELECTOR:
            return str(abi_decode(["string"], data[4:])[0])
        if data[:4] == PANIC_SELECTOR:
            code = int(abi_decode(["uint256"], data[4:])[0])
            return f"panic 0x{code:02x}: {PANIC_REASONS.get(code, 'unknown panic code')}"
    except DecodingError:
        pass
    return f"custom error 0x{data[:4].hex()} (data 0x{data.hex()})"


def _strip_prefix(message: str) -> str:
    text = message.strip()
    if text.startswith(REVERT_PREFIX):
        text = text[len(REVERT_PREFIX):].lstrip(": ")
    return text or "reverted without a reason"


def _reason_of_logic_error(exc: ContractLogicError) -> str:
    """web3 keeps the revert data of a JSON-RPC node; prefer it to the node's wording."""
    data = exc.data
    if isinstance(data, str) and data.startswith("0x"):
        try:
            return revert_reason(bytes.fromhex(data[2:]))
        except ValueError:
            pass
    return _strip_prefix(exc.message or str(exc))


def _reason_of_tester_failure(exc: TransactionFailed) -> str:
    """eth-tester decodes Error(string) itself; other revert data arrives as a bytes repr."""
    message = _strip_prefix(str(exc.args[0]) if exc.args else "")
    if message.startswith(("b'", 'b"')):
        try:
            raw = ast.literal_eval(message)  # a literal only: never evaluates code
        except (ValueError, SyntaxError):
            return message
        if isinstance(raw, bytes):
            return revert_reason(raw)
    return message


def _rpc_message(exc: Web3RPCError) -> str:
    response = exc.rpc_response or {}
    error = response.get("error")
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return str(error["message"])
    return exc.user_message or str(exc)


def _hexbytes(value: object) -> bytes:
    return bytes(cast(bytes, value))


class Web3Endpoint:
    """One ``Endpoint`` (endpoints.py) over a ``Web3`` instance."""

    def __init__(self, w3: Web3, name: str) -> None:
        self.w3 = w3
        self.name = name

    @classmethod
    def http(cls, url: str, name: str | None = None, timeout: float = 10.0) -> Web3Endpoint:
        provider = Web3.HTTPProvider(url, request_kwargs={"timeout": timeout},
                                     exception_retry_configuration=None)
        return cls(Web3(provider), name or url)

    def _run(self, what: str, action: Callable[[], T], *, reverts: bool = False,
             rejection: bool = False) -> T:
        """Run one web3 request, translating every failure to the Protocol's exceptions."""
        try:
            return action()
        except ContractLogicError as exc:
            if reverts:
                raise CallReverted(_reason_of_logic_error(exc)) from exc
            raise EndpointError(f"{self.name}: {what} failed: {exc}") from exc
        except TransactionFailed as exc:
            if reverts:
                raise CallReverted(_reason_of_tester_failure(exc)) from exc
            raise EndpointError(f"{self.name}: {what} failed: {exc}") from exc
        except Web3RPCError as exc:
            kind = TransactionRejected if rejection else EndpointError
            raise kind(f"{self.name}: {what} refused: {_rpc_message(exc)}") from exc
        except OSError as exc:  # requests' connection errors and timeouts are OSErrors
            raise EndpointError(f"{self.name}: unreachable during {what}: {exc}") from exc
        except EndpointError:
            raise
        except Exception as exc:
            # In-process backends (eth-tester, py-evm, rlp) raise their own exception types;
            # the Protocol promises EndpointError, whatever the provider.
            kind = TransactionRejected if rejection else EndpointError
            raise kind(f"{self.name}: {what} failed: {exc}") from exc

    def chain_id(self) -> int:
        return self._run("eth_chainId", lambda: int(self.w3.eth.chain_id))

    def block(self, number: int | None = None) -> Block:
        ident: BlockIdentifier = "latest" if number is None else number

        def fetch() -> Block:
            try:
                b = self.w3.eth.get_block(ident)
            except BlockNotFound as exc:
                raise EndpointError(f"{self.name}: no block {number}") from exc
            return Block(number=int(b["number"]), hash=_hexbytes(b["hash"]),
                         parent_hash=_hexbytes(b["parentHash"]), timestamp=int(b["timestamp"]),
                         base_fee_per_gas=int(b.get("baseFeePerGas", 0)))

        return self._run("eth_getBlockByNumber", fetch)

    def nonce(self, address: str, *, pending: bool) -> int:
        account = checksummed(address)
        tag: BlockIdentifier = "pending" if pending else "latest"
        return self._run("eth_getTransactionCount",
                         lambda: int(self.w3.eth.get_transaction_count(account, tag)))

    def balance(self, address: str) -> int:
        account = checksummed(address)
        return self._run("eth_getBalance", lambda: int(self.w3.eth.get_balance(account)))

    def send_raw_transaction(self, raw: bytes) -> bytes:
        """Broadcast; idempotent: bytes the node already holds (pooled or mined) return their
        hash instead of the node's "nonce too low" / "already known", so a broadcast retried
        after a crash is not mistaken for a failure."""
        tx_hash = keccak256(raw)
        try:
            sent = self._run("eth_sendRawTransaction",
                             lambda: _hexbytes(self.w3.eth.send_raw_transaction(raw)),
                             rejection=True)
        except TransactionRejected:
            if self._knows(tx_hash):
                return tx_hash
            raise
        if sent != tx_hash:
            raise EndpointError(f"{self.name}: node returned hash 0x{sent.hex()} for a "
                                f"transaction whose hash is 0x{tx_hash.hex()}")
        return sent

    def _knows(self, tx_hash: bytes) -> bool:
        try:
            self._run("eth_getTransactionByHash",
                      lambda: self.w3.eth.get_transaction(HexBytes(tx_hash)))
        except EndpointError:
            return False
        return True

    def receipt(self, tx_hash: bytes) -> Receipt | None:
        def fetch() -> Receipt | None:
            try:
                r = self.w3.eth.get_transaction_receipt(HexBytes(tx_hash))
            except TransactionNotFound:
                return None
            return Receipt(tx_hash=_hexbytes(r["transactionHash"]),
                           block_number=int(r["blockNumber"]),
                           block_hash=_hexbytes(r["blockHash"]), status=int(r["status"]),
                           gas_used=int(r["gasUsed"]))

        return self._run("eth_getTransactionReceipt", fetch)

    def call(self, request: CallRequest, block: int | None = None) -> bytes:
        params = _params(request)
        ident: BlockIdentifier = "latest" if block is None else block
        return self._run("eth_call", lambda: _hexbytes(self.w3.eth.call(params, ident)),
                         reverts=True)

    def estimate_gas(self, request: CallRequest) -> int:
        params = _params(request)
        return self._run("eth_estimateGas", lambda: int(self.w3.eth.estimate_gas(params)),
                         reverts=True)

    def max_priority_fee(self) -> int:
        return self._run("eth_maxPriorityFeePerGas",
                         lambda: int(self.w3.eth.max_priority_fee))

    def code(self, address: str) -> bytes:
        """The deployed code at ``address`` (empty for an account without code)."""
        account = checksummed(address)
        return self._run("eth_getCode", lambda: _hexbytes(self.w3.eth.get_code(account)))

    def logs(self, address: str, topics: list[bytes], from_block: int, to_block: int
             ) -> list[dict[str, Any]]:
        """The logs ``address`` emitted in blocks from_block … to_block whose leading
        topics are ``topics`` (eth_getLogs), in chain order."""
        params = cast(FilterParams, {
            "address": checksummed(address), "fromBlock": from_block, "toBlock": to_block,
            "topics": ["0x" + t.hex() for t in topics]})
        return self._run("eth_getLogs",
                         lambda: [dict(entry) for entry in self.w3.eth.get_logs(params)])


def _params(request: CallRequest) -> TxParams:
    params: dict[str, Any] = {
        "from": checksummed(request.sender),
        "data": "0x" + request.data.hex(),
        "value": request.value,
    }
    if request.to:
        params["to"] = checksummed(request.to)
    if request.gas is not None:
        params["gas"] = request.gas
    return cast(TxParams, params)
