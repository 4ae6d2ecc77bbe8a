"""A real Ethereum node for tests: anvil from the npm package @foundry-rs/anvil-linux-amd64,
started on a free loopback port and stopped afterwards.

The binary comes from `.ci/run`'s install step (npm into the gitignored `.tools/`), or from
``$ANVIL_BIN``. A missing binary fails the tests that need it — it never skips them, because a
skipped real-node test would let "works on eth-tester only" pass CI.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import coincurve
import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

from ethereum.transactions import UnsignedTx, keccak_digest
from oms_core.chain.endpoints import Endpoint, Receipt
from oms_core.chain.web3_endpoint import Web3Endpoint

ROOT = Path(__file__).resolve().parent.parent
ANVIL_PACKAGE_DIR = ROOT / ".tools" / "node_modules" / "@foundry-rs" / "anvil-linux-amd64"
ANVIL_CHAIN_ID = 31337  # anvil's default, passed explicitly so a new default cannot move it
DEV_MNEMONIC = "test test test test test test test test test test test junk"  # anvil's own
START_TIMEOUT = 20.0


class AnvilUnavailableError(Exception):
    """anvil is not installed or did not start; the message says what to do."""


def anvil_binary() -> Path:
    """``$ANVIL_BIN``, else the executable named ``anvil`` in the npm package."""
    override = os.environ.get("ANVIL_BIN")
    if override:
        path = Path(override)
        if not os.access(path, os.X_OK):
            raise AnvilUnavailableError(f"ANVIL_BIN={override} is not an executable file")
        return path
    candidates = [ANVIL_PACKAGE_DIR / "bin" / "anvil"]
    if ANVIL_PACKAGE_DIR.is_dir():
        candidates += sorted(ANVIL_PACKAGE_DIR.rglob("anvil"))
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return path
    raise AnvilUnavailableError(
        f"anvil not found under {ANVIL_PACKAGE_DIR}. The real-node tests need it: run "
        "`bash testing/setup.sh` from the repository root (README's test command does), or "
        "set ANVIL_BIN to an anvil executable.")


def free_port() -> int:
    """A TCP port of loopback that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers(url: str) -> bool:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []})
    request = urllib.request.Request(url, body.encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=1.0) as response:
            return "result" in json.loads(response.read())
    except (OSError, ValueError):
        return False


@dataclass(frozen=True)
class AnvilNode:
    url: str
    chain_id: int
    pid: int

    def web3(self) -> Web3:
        return Web3(Web3.HTTPProvider(self.url, request_kwargs={"timeout": 10},
                                      exception_retry_configuration=None))

    def endpoint(self, name: str = "anvil") -> Web3Endpoint:
        return Web3Endpoint.http(self.url, name)

    def dev_account(self, index: int = 0) -> LocalAccount:
        """The funded account ``index`` of anvil's mnemonic (BIP44 path m/44'/60'/0'/0/i)."""
        Account.enable_unaudited_hdwallet_features()
        account: LocalAccount = Account.from_mnemonic(
            DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")
        return account

    def fund(self, address: str, wei: int = 10**20) -> None:
        """Send ``wei`` from dev account 0 to ``address`` and wait until it is mined."""
        w3, dev = self.web3(), self.dev_account(0)
        tx = dev.sign_transaction({
            "to": Web3.to_checksum_address(address), "value": wei, "gas": 21000,
            "gasPrice": 3 * 10**9, "chainId": self.chain_id,
            "nonce": w3.eth.get_transaction_count(dev.address, "pending")})
        w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(tx.raw_transaction))


def _log_tail(log: IO[bytes]) -> str:
    log.seek(0)
    return log.read()[-2000:].decode(errors="replace")


def _start(binary: Path, log: IO[bytes]) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [str(binary), "--host", "127.0.0.1", "--port", str(port), "--chain-id",
         str(ANVIL_CHAIN_ID), "--mnemonic", DEV_MNEMONIC, "--accounts", "10"],
        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AnvilUnavailableError(f"anvil exited with {process.returncode}: "
                                        f"{_log_tail(log)}")
        if _answers(url):
            return process, url
        time.sleep(0.05)
    _stop(process)
    raise AnvilUnavailableError(f"anvil did not answer on {url} within {START_TIMEOUT:.0f} s: "
                                f"{_log_tail(log)}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@contextmanager
def running_anvil(attempts: int = 3) -> Iterator[AnvilNode]:
    """A fresh anvil on a free loopback port; retried when another process takes the port
    between choosing it and anvil binding it."""
    binary = anvil_binary()
    with tempfile.TemporaryFile() as log:
        for attempt in range(attempts):
            try:
                process, url = _start(binary, log)
                break
            except AnvilUnavailableError:
                if attempt == attempts - 1:
                    raise
        try:
            yield AnvilNode(url, ANVIL_CHAIN_ID, process.pid)
        finally:
            _stop(process)


@pytest.fixture(scope="session")
def anvil_node() -> Iterator[AnvilNode]:
    """One anvil for the session; tests deploy their own contracts on it."""
    try:
        with running_anvil() as node:
            yield node
    except AnvilUnavailableError as exc:
        pytest.fail(str(exc), pytrace=False)


def coincurve_address(key: coincurve.PrivateKey) -> str:
    """The Ethereum address of a plain secp256k1 key: last 20 bytes of Keccak(x ‖ y)."""
    return "0x" + keccak_digest(key.public_key.format(compressed=False)[1:])[-20:].hex()


def sign_with_coincurve(tx: UnsignedTx, key: coincurve.PrivateKey) -> bytes:
    """Sign as the threshold signer does: a raw (r, s, recovery id) over the signing digest.
    libsecp256k1 returns low-s, and its recovery id is the y-parity of R."""
    signature = key.sign_recoverable(tx.signing_digest(), hasher=None)
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:64], "big")
    return tx.signed_raw(r, s, signature[64])


def amount_out(amount_in: int, reserve_in: int, reserve_out: int) -> int:
    """x·y=k output with the pool's 0.3 % input fee, computed independently of the contract."""
    return amount_in * 997 * reserve_out // (reserve_in * 1000 + amount_in * 997)


def wait_receipt(endpoint: Endpoint, tx_hash: bytes, timeout: float = 10.0) -> Receipt:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        receipt = endpoint.receipt(tx_hash)
        if receipt is not None:
            return receipt
        time.sleep(0.05)
    raise AssertionError(f"no receipt for 0x{tx_hash.hex()} within {timeout} s")
