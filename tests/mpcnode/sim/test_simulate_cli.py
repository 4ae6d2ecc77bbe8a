"""``python -m mpcnode.sim.simulate_cli``: a whole 2-of-3 lifecycle from the command line, its JSON
output checked by an independent verifier, and its refusals of bad arguments."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from coincurve import PublicKey

from mpcnode.ceremony.prime_pool import load_pool
from mpcnode.crypto.group import Q
from mpcnode.protocol.sign import Signature
from mpcnode.sim import simulate_cli as simulate
from testing.fixture_keys import POOL_1024

FIXTURE_POOL = POOL_1024
DIGEST = hashlib.sha256(b"test_simulate").digest()


@dataclass(frozen=True)
class Run:
    code: int
    stdout: str
    stderr: str


def run_cli(argv: list[str]) -> Run:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = simulate.main(argv)
    return Run(code, out.getvalue(), err.getvalue())


def pool_copy(directory: Path) -> Path:
    dst = directory / "pool.json"
    shutil.copyfile(FIXTURE_POOL, dst)
    return dst


@dataclass(frozen=True)
class Simulated:
    run: Run
    result: dict[str, Any]
    pool: Path


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Simulated:
    pool = pool_copy(tmp_path_factory.mktemp("simulate"))
    run = run_cli(["--parties", "3", "--threshold", "2", "--digest-hex", DIGEST.hex(),
                   "--prime-pool", str(pool), "--allow-test-pool", "--json"])
    assert run.code == 0, run.stderr
    return Simulated(run, json.loads(run.stdout), pool)


def test_json_fields(simulated: Simulated) -> None:
    r = simulated.result
    assert r["digest"] == DIGEST.hex()
    assert (r["parties"], r["threshold"], r["path"]) == (3, 2, "m")
    assert r["signing_key"] == r["public_key"]
    assert len(bytes.fromhex(r["public_key"])) == 33
    assert len(r["r"]) == len(r["s"]) == 64
    assert r["recovery_id"] in (0, 1, 2, 3)
    assert len(r["signers"]) == 2
    assert set(r["signers"]) <= {1, 2, 3}
    assert r["signers"] == sorted(set(r["signers"]))
    phases = {"primes", "keygen", "aux_info", "presign", "sign"}
    assert set(r["seconds"]) == phases
    assert all(isinstance(v, float) and v >= 0 for v in r["seconds"].values())


def test_signature_verifies_independently(simulated: Simulated) -> None:
    r = simulated.result
    sig = Signature(int(r["r"], 16), int(r["s"], 16), r["recovery_id"])
    assert 0 < sig.s <= Q // 2  # low-s
    pk = PublicKey(bytes.fromhex(r["public_key"]))
    assert pk.verify(sig.der(), DIGEST, hasher=None)
    assert not pk.verify(sig.der(), hashlib.sha256(DIGEST).digest(), hasher=None)
    recovered = PublicKey.from_signature_and_message(
        sig.compact() + bytes([sig.recovery_id]), DIGEST, hasher=None)
    assert recovered.format() == pk.format()


def test_progress_goes_to_stderr(simulated: Simulated) -> None:
    assert "[done] signature verifies" in simulated.run.stderr
    assert simulated.run.stdout.count("\n") == 1  # one JSON object, nothing else


def test_primes_are_taken_out_of_the_pool(simulated: Simulated) -> None:
    before = load_pool(FIXTURE_POOL).primes
    after = load_pool(simulated.pool).primes
    assert after == before[6:]  # 2 primes for each of the 3 parties


def test_refuses_a_test_pool_without_the_flag(tmp_path: Path) -> None:
    pool = pool_copy(tmp_path)
    run = run_cli(["--parties", "3", "--threshold", "2", "--digest-hex", DIGEST.hex(),
                   "--prime-pool", str(pool), "--json"])
    assert run.code == 2
    assert "test material" in run.stderr
    assert "refusing" in run.stderr
    assert run.stdout == ""
    assert load_pool(pool).primes == load_pool(FIXTURE_POOL).primes  # nothing taken


@pytest.mark.parametrize(
    ("digest_hex", "message"),
    [
        (DIGEST.hex()[:-2], "--digest-hex must be 32 bytes, got 31"),
        (DIGEST.hex() + "00", "--digest-hex must be 32 bytes, got 33"),
        ("", "--digest-hex must be 32 bytes, got 0"),
        ("zz" * 32, "--digest-hex is not hexadecimal"),
        (DIGEST.hex()[:-1], "--digest-hex is not hexadecimal"),
    ],
    ids=["31-bytes", "33-bytes", "empty", "non-hex", "odd-length"],
)
def test_refuses_a_bad_digest(tmp_path: Path, digest_hex: str, message: str) -> None:
    run = run_cli(["--digest-hex", digest_hex, "--prime-pool", str(pool_copy(tmp_path)),
                   "--allow-test-pool", "--json"])
    assert run.code == 2
    assert message in run.stderr
    assert run.stdout == ""


@pytest.mark.parametrize(("parties", "threshold"), [(3, 4), (2, 5), (3, 0)])
def test_refuses_a_bad_threshold(tmp_path: Path, parties: int, threshold: int) -> None:
    run = run_cli(["--parties", str(parties), "--threshold", str(threshold),
                   "--digest-hex", DIGEST.hex(), "--prime-pool", str(pool_copy(tmp_path)),
                   "--allow-test-pool", "--json"])
    assert run.code == 2
    assert "need 1 <= threshold <= parties" in run.stderr
    assert run.stdout == ""
