"""``oms serve`` as a separate process, SIGKILLed while it works, against a real 2-of-3
cluster of ``mpcnode serve`` processes and a real anvil.

A trader submits and confirms transfers one after another through the gRPC API while the
OMS process is killed with SIGKILL: twice at targeted points — right after the signer
nodes returned σ (before the OMS stored the signature) and right after the broadcast
(before it recorded it) — and then at random moments, each time started again
(``oms serve`` recovers at start and every second). One request is over the trader's
limit and waits for the risk officer the whole time. Afterwards:

- every request ended in exactly one terminal state, or legitimately waits for a person
  (the one over the limit, still pending approval);
- nothing approved is lost: every transfer within the limit is confirmed on chain;
- no nonce carries two transactions, and no transaction is stranded behind a gap: the
  mined nonces are exactly 0 … n − 1 and nothing waits in the pool;
- the audit log verifies (``oms audit verify``).

The kill points are set by a launcher (``LAUNCHER``) that wraps two production methods
before it runs the unchanged ``oms serve``; it imports nothing from ``test_only``.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from web3 import Web3

from ethereum.addresses import ethereum_address
from oms_core.cli.authenticator_file import load_authenticator, save_authenticator
from oms_core.cli.client_challenge import challenge_to_sign
from oms_core.cli.instance_setup import DEMO_RP
from oms_core.cli.oms_cli import main as oms_main
from oms_core.cli.oms_client import OmsCallError, OmsClient
from oms_core.rpc import oms_pb2 as pb
from testing.chain_support import ANVIL_CHAIN_ID, AnvilNode, free_port, running_anvil
from testing.integration_support import process_cluster
from testing.transfer_policy import OVER_LIMIT_NEEDS_RISK_OFFICER, SINK_ADDRESS, transfer_policy

REPO = Path(__file__).resolve().parents[2]  # this checkout's code runs in oms serve
TREASURY = SINK_ADDRESS
POLICY = transfer_policy("crash", max_single_usd=1000, max_daily_usd=10_000_000,
                         chain_id=ANVIL_CHAIN_ID, extra_rules=OVER_LIMIT_NEEDS_RISK_OFFICER)

LAUNCHER = """
import json
import os, signal, sys

def _die():
    os.kill(os.getpid(), signal.SIGKILL)

point = os.environ.get("OMS_KILL_AT", "")
if point == "after_sigma":  # the nodes answered; the signature is not stored yet
    from coordinator import oms_signer
    _sign = oms_signer.CoordinatorSigner.sign
    def sign(self, *args, **kwargs):
        out = _sign(self, *args, **kwargs)
        _die()
        return out
    oms_signer.CoordinatorSigner.sign = sign
elif point == "after_broadcast":  # sent to the endpoints; not recorded as broadcast
    from oms_core.app import chain_gateway
    _broadcast = chain_gateway.ChainGateway.broadcast
    def broadcast(self, raw):
        out = _broadcast(self, raw)
        _die()
        return out
    chain_gateway.ChainGateway.broadcast = broadcast
from oms_core.cli.oms_cli import main
sys.exit(main(sys.argv[1:]))
"""
TERMINAL = {"confirmed", "failed", "rejected", "expired"}
UNKNOWN = "0x" + "99" * 20
_AUTHENTICATOR_FILES = threading.Lock()


@dataclass
class Instance:
    config: Path
    target: str
    address: str
    anvil: AnvilNode
    people: Path


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Instance]:
    root = tmp_path_factory.mktemp("oms-crash")
    with process_cluster(root / "cluster", 3, 2, unauthorized_digests=False) as (_, co), \
            running_anvil() as anvil:
        key, _ = co.keygen()
        co.aux_info(key.key_id)
        address = ethereum_address(key.public_key)
        anvil.fund(address)
        (root / "policy.toml").write_text(POLICY)
        port = free_port()
        assert oms_main(["init", "--cluster", str(root / "cluster"), "--key-id",
                         key.key_id.hex(), "--out", str(root / "oms"), "--no-tls",
                         "--listen", f"127.0.0.1:{port}", "--policy", str(root / "policy.toml"),
                         "--price", "ETH=2000", "--demo-person", "tina:trader",
                         "--demo-person", "rita:risk_officer", "--demo-person", "admin1:admin",
                         "--demo-person", "admin2:admin"]) == 0
        config = root / "oms" / "oms.toml"
        with config.open("a") as f:
            f.write(f"""
[chain]
chain_id = {ANVIL_CHAIN_ID}
holding_address = "{address}"
confirmations = 1
confirm_timeout_seconds = 20
poll_seconds = 0.1
recovery_seconds = 10
recovery_interval_seconds = 1

[chain.endpoints]
anvil-a = "{anvil.url}"
anvil-b = "{anvil.url}"
""")
        yield Instance(config, f"127.0.0.1:{port}", address.lower(), anvil,
                       root / "oms" / "people")




# --------------------------------------------------------------------------- the process


@dataclass
class OmsProcess:
    """``oms serve`` in its own process; ``kill`` is SIGKILL, nothing graceful."""

    instance: Instance
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    kills: list[str] = field(default_factory=list)

    def start(self, kill_at: str = "") -> None:
        env = {**os.environ, "OMS_KILL_AT": kill_at,
               "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO),
                                                            os.environ.get("PYTHONPATH")]))}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", LAUNCHER, "serve", "--config",
                 str(self.instance.config)], stdout=out, stderr=out, env=env)
        self.starts += 1

    def wait_ready(self, timeout: float = 60.0) -> bool:
        """True once it serves; False if it died first (a targeted kill point reached)."""
        deadline = time.monotonic() + timeout
        with OmsClient(self.instance.target, ca_pem=None, timeout=2) as client:
            while time.monotonic() < deadline:
                if self.proc is not None and self.proc.poll() is not None:
                    return False
                if client.healthy():
                    return True
                time.sleep(0.1)
        raise AssertionError(f"oms serve did not start: {self.log.read_text()[-3000:]}")

    def kill(self, why: str) -> None:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.kills.append(why)
        self.proc.wait()

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill("did not stop on SIGTERM")


@dataclass
class Trader:
    """A person at the API: retries what failed because the OMS was down, never more."""

    instance: Instance
    oms: OmsProcess
    user: str = "tina"
    token: str = ""

    def _authenticator_file(self) -> Path:
        return self.instance.people / f"{self.user}.authenticator.json"

    def _assert(self, challenge: bytes) -> bytes:
        with _AUTHENTICATOR_FILES:  # one counter per credential, raised one at a time
            return self._assert_now(challenge)

    def _assert_now(self, challenge: bytes) -> bytes:
        path = self._authenticator_file()
        authenticator = load_authenticator(path)
        assertion = authenticator.get_assertion(DEMO_RP.rp_id, DEMO_RP.origin, challenge,
                                                authenticator.credential_id)
        save_authenticator(path, authenticator)
        return assertion.to_json()

    def login(self) -> None:
        with OmsClient(self.instance.target, ca_pem=None, timeout=60) as client:
            challenge = client.login_begin(self.user)
            self.token = client.login_finish(self.user, self._assert(challenge)).token

    def _with_retries(self, action: str, rid: str,
                      fn: Callable[[OmsClient], pb.RequestView]) -> pb.RequestView:
        deadline = time.monotonic() + 120
        while True:
            try:
                if not self.token:
                    self.login()
                with OmsClient(self.instance.target, ca_pem=None, timeout=60) as client:
                    return fn(client)
            except OmsCallError as exc:
                if time.monotonic() > deadline:
                    raise AssertionError(f"{action} {rid}: {exc}") from exc
                if exc.code == "UNAUTHENTICATED":
                    self.token = ""
                elif exc.code not in ("UNAVAILABLE", "DEADLINE_EXCEEDED", "CANCELLED"):
                    raise
                time.sleep(0.2)

    def transfer(self, rid: str, amount: str) -> None:
        """Submit (idempotent by request id) and confirm until the OMS took the confirmation."""
        sub = pb.SubmitRequest(client_request_id=rid, asset="ETH", amount=amount,
                               destination=TREASURY)
        self._with_retries("submit", rid, lambda c: c.submit(self.token, sub))
        if self.state(rid) != "policy_evaluated":
            return  # the OMS went down after it took the submission (and a confirmation)
        challenge = challenge_to_sign(self._with_retries(
            "get", rid, lambda c: c.get(self.token, rid)), rid).challenge
        try:
            self._with_retries("confirm", rid, lambda c: c.confirm(
                self.token, rid, self._assert(challenge)))
        except OmsCallError:  # taken before a kill, so refused on the retry: fine
            if self.state(rid) == "policy_evaluated":
                raise

    def state(self, rid: str) -> str:
        state: str = self._with_retries("get", rid, lambda c: c.get(self.token, rid)).state
        return state


# --------------------------------------------------------------------------- the property


def run_workload(instance: Instance, tmp: Path, *, requests: int, random_kills: int,
                 seed: int) -> tuple[OmsProcess, list[str], str, float]:
    """The workload under kills; returns the process (running), the small requests, the
    big one's id and the time taken."""
    rng = random.Random(seed)
    oms = OmsProcess(instance, tmp / f"oms-{seed}.log")
    trader = Trader(instance, oms)
    prefix = f"s{seed}"
    small = [f"{prefix}-{i}" for i in range(requests)]
    big = f"{prefix}-big"
    started = time.monotonic()
    stop = threading.Event()

    def keep_alive_and_kill() -> None:
        """Targeted kills first (each launch dies at its point), then random ones."""
        for point in ("after_sigma", "after_broadcast"):
            oms.start(point)  # it kills itself there, serving a request or recovering
            while oms.running() and not stop.is_set():
                time.sleep(0.05)
            assert oms.proc is not None and oms.proc.wait() == -signal.SIGKILL
            oms.kills.append(point)
        kills = 0
        while not stop.is_set():
            oms.start()
            assert oms.wait_ready(), oms.log.read_text()[-3000:]
            if kills < random_kills and stop.wait(rng.uniform(0.2, 2.0)) is False:
                oms.kill(f"random {kills + 1}")
                kills += 1
                continue
            stop.wait()
            return

    killer = threading.Thread(target=keep_alive_and_kill, daemon=True)
    killer.start()
    trader.transfer(big, "1")  # 2000 USD: over the trader's 1000 USD, waits for rita
    for rid in small:
        trader.transfer(rid, "0.01")
    # After the workload: let the random kills run out, then let recovery finish.
    while killer.is_alive() and len(oms.kills) < 2 + random_kills and \
            time.monotonic() - started < 90:
        time.sleep(0.2)
    stop.set()
    killer.join(60)
    assert oms.wait_ready()
    _wait_settled(instance, trader, small, timeout=60)
    return oms, small, big, time.monotonic() - started


def _wait_settled(instance: Instance, trader: Trader, rids: list[str], timeout: float
                  ) -> None:
    deadline = time.monotonic() + timeout
    while True:
        states = {rid: trader.state(rid) for rid in rids}
        if set(states.values()) <= TERMINAL:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"not settled after {timeout} s: {states}")
        time.sleep(0.3)


def check_outcome(instance: Instance, oms: OmsProcess, small: list[str], big: str,
                  capsys: pytest.CaptureFixture[str]) -> None:
    oms.stop()
    db = instance.config.parent / "oms.sqlite3"
    conn = sqlite3.connect(db)
    try:
        rows = {r: (s, bytes(t) if t else None) for r, s, t in conn.execute(
            "SELECT request_id, state, tx_hash FROM requests")}
        terminal_events = dict(conn.execute(
            "SELECT request_id, count(*) FROM request_events WHERE to_state IN "
            "('confirmed', 'failed', 'rejected', 'expired') GROUP BY request_id"))
        nonces = dict(conn.execute("SELECT request_id, nonce FROM signing_nonces"))
    finally:
        conn.close()
    # Every request: exactly one terminal state, or waiting for a person.
    assert {r: rows[r][0] for r in small} == dict.fromkeys(small, "confirmed")
    assert rows[big][0] == "pending_approval" and big not in nonces
    assert all(terminal_events.get(r) == 1 for r in small), terminal_events
    # On chain: one transaction per confirmed request, at nonces 0 … n − 1, nothing queued.
    w3 = instance.anvil.web3()
    sender = Web3.to_checksum_address(instance.address)
    mined = w3.eth.get_transaction_count(sender, "latest")
    assert w3.eth.get_transaction_count(sender, "pending") == mined  # nothing stranded
    chain_nonces = []
    for rid in small:
        tx_hash = rows[rid][1]
        assert tx_hash is not None
        receipt = w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
        tx = w3.eth.get_transaction(tx_hash)  # type: ignore[arg-type]
        assert receipt["status"] == 1 and tx["from"] == sender
        chain_nonces.append(int(tx["nonce"]))
        assert nonces[rid] == tx["nonce"]
    assert sorted(chain_nonces) == list(range(mined - len(small), mined))  # one each
    assert len(set(nonces.values())) == len(nonces)  # no nonce given to two requests
    # What recovery must not settle, an operator cannot either: the big one waits.
    capsys.readouterr()
    assert oms_main(["resolve", big, "--as", "failed", "--reason", "tidy up", "--operator",
                     "olga", "--config", str(instance.config)]) == 1
    assert capsys.readouterr().err == (
        f"WrongStateError: request {big} (pending_approval): only an approved or "
        "in-flight request is resolved\n")
    # The audit log verifies.
    assert oms_main(["audit", "verify", "--db", str(db), "--public-key",
                     str(instance.config.parent / "audit.pub.pem")]) == 0


@pytest.mark.parametrize(("requests", "random_kills", "seed"), [
    (6, 2, 1),
    pytest.param(24, 10, 2, marks=pytest.mark.slow),
], ids=["fast", "thirty-requests"])
def test_oms_serve_survives_sigkill_at_the_targeted_points_and_at_random(
        instance: Instance, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        requests: int, random_kills: int, seed: int) -> None:
    oms, small, big, took = run_workload(instance, tmp_path, requests=requests,
                                         random_kills=random_kills, seed=seed)
    try:
        assert oms.kills[:2] == ["after_sigma", "after_broadcast"], oms.kills
        assert len(oms.kills) == 2 + random_kills, oms.kills
        check_outcome(instance, oms, small, big, capsys)
    finally:
        oms.stop()
    found = recovered(instance.config.parent / "oms.sqlite3", f"request:s{seed}-")
    # The targeted kills left the first transfer signed by the nodes but not stored
    # (signing), then — killed again as recovery broadcast it — sent but not recorded
    # (signed): each restart found it so and moved it on.
    assert found[:2] == [(small[0], "signing"), (small[0], "signed")], found
    tally = Counter(state for _, state in found)
    with capsys.disabled():
        print(f"\n{len(small) + 1} requests, {len(oms.kills)} SIGKILLs {oms.kills}, "
              f"{oms.starts} starts, {took:.1f} s; recovery found {dict(tally)}",
              file=sys.stderr)


def recovered(db: Path, prefix: str) -> list[tuple[str, str]]:
    """The requests each start of the OMS found unsettled, with their state then, in order
    (its audit entries ``request.recovery_needed``)."""
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("SELECT subject, details FROM audit_entries WHERE action = "
                            "'request.recovery_needed' AND subject LIKE ? ORDER BY idx",
                            (prefix + "%",)).fetchall()
    finally:
        conn.close()
    return [(subject.removeprefix("request:"), json.loads(details)["state"])
            for subject, details in rows]


def test_concurrent_submissions_with_refusals_strand_no_transaction(
        instance: Instance, tmp_path: Path) -> None:
    """Twelve clients at once (the measurement of issue 13): four refused at submission
    (an unknown destination), two over the limit (one rejected later, one left waiting),
    six confirmed in another order than submitted. Refused and waiting requests hold no
    nonce, so the six are mined at consecutive nonces and nothing waits in the pool."""
    oms = OmsProcess(instance, tmp_path / "oms-concurrent.log")
    oms.start()
    assert oms.wait_ready()
    try:
        w3 = instance.anvil.web3()
        sender = Web3.to_checksum_address(instance.address)
        start = w3.eth.get_transaction_count(sender, "latest")
        kinds = ["refused"] * 4 + ["over"] * 2 + ["small"] * 6
        random.Random(13).shuffle(kinds)
        rids = [f"c-{i}-{k}" for i, k in enumerate(kinds)]
        trader = Trader(instance, oms)
        trader.login()  # one session for the twelve clients
        outcomes: dict[str, str] = {}

        def submit(rid: str, kind: str) -> None:
            to, amount = (UNKNOWN, "0.01") if kind == "refused" else (
                TREASURY, "1" if kind == "over" else "0.01")
            sub = pb.SubmitRequest(client_request_id=rid, asset="ETH", amount=amount,
                                   destination=to)
            try:
                outcomes[rid] = trader._with_retries(
                    "submit", rid, lambda c: c.submit(trader.token, sub)).state
            except OmsCallError as exc:
                outcomes[rid] = exc.code

        threads = [threading.Thread(target=submit, args=(r, k)) for r, k in zip(rids, kinds,
                                                                                strict=True)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert {r: outcomes[r] for r, k in zip(rids, kinds, strict=True) if k == "refused"} \
            == {r: "PERMISSION_DENIED" for r, k in zip(rids, kinds, strict=True)
                if k == "refused"}
        small = [r for r, k in zip(rids, kinds, strict=True) if k == "small"]
        over = [r for r, k in zip(rids, kinds, strict=True) if k == "over"]
        confirmers = [threading.Thread(target=trader.transfer, args=(r, "0.01"))
                      for r in reversed(small)]
        for r in over:
            trader.transfer(r, "1")
        for t in confirmers:
            t.start()
        for t in confirmers:
            t.join(120)
        rita = Trader(instance, oms, user="rita")
        rita._with_retries("reject", over[0], lambda c: c.reject(rita.token, over[0],
                                                                  "not today"))
        assert {r: trader.state(r) for r in small} == dict.fromkeys(small, "confirmed")
        assert [trader.state(r) for r in over] == ["rejected", "pending_approval"]
        mined = w3.eth.get_transaction_count(sender, "latest")
        assert mined == start + len(small)
        assert w3.eth.get_transaction_count(sender, "pending") == mined
    finally:
        oms.stop()
