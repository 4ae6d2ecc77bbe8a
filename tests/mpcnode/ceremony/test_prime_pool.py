"""The safe-prime pool file (mpcnode/prime_pool.py) and the ``mpc-primes`` CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import gmpy2
import pytest

from mpcnode.ceremony import primes_cli
from mpcnode.ceremony.prime_pool import (
    FORMAT,
    TEST_WARNING,
    PrimePool,
    PrimePoolError,
    load_pool,
    take_primes,
    write_pool_atomic,
)
from mpcnode.crypto.primes import is_safe_prime
from testing.fixture_keys import POOL_1024

FIXTURE_1024 = POOL_1024
FIXTURE_PRIMES = load_pool(FIXTURE_1024).primes


@pytest.fixture
def pool_copy(tmp_path: Path) -> Path:
    dst = tmp_path / "pool.json"
    shutil.copyfile(FIXTURE_1024, dst)
    return dst


def write_doc(path: Path, primes: list[int], *, bits: int = 1024, test: bool = False) -> Path:
    write_pool_atomic(path, PrimePool(bits, tuple(primes), test))
    return path


def leftover_temp_files(directory: Path) -> list[Path]:
    return [p for p in directory.iterdir() if p.suffix == ".tmp"]


def test_fixture_loads_verified_and_labelled() -> None:
    pool = load_pool(FIXTURE_1024, verify=True)
    assert pool.bits == 1024
    assert pool.test_material
    assert len(pool.primes) >= 8
    assert len(set(pool.primes)) == len(pool.primes)
    for p in pool.primes:
        assert p.bit_length() == 1024
        assert p % 4 == 3
    doc = json.loads(FIXTURE_1024.read_text())
    assert doc["format"] == FORMAT
    assert doc["warning"] == TEST_WARNING


def test_to_json_round_trip(tmp_path: Path) -> None:
    pool = PrimePool(1024, FIXTURE_PRIMES[:3], test_material=False)
    path = write_doc(tmp_path / "sub" / "p.json", list(pool.primes))
    assert load_pool(path) == pool
    doc = json.loads(path.read_text())
    assert "test_material" not in doc and "warning" not in doc
    labelled = PrimePool(1024, FIXTURE_PRIMES[:1], test_material=True)
    assert json.loads(labelled.to_json())["warning"] == TEST_WARNING
    assert leftover_temp_files(path.parent) == []


def test_take_removes_primes_atomically(pool_copy: Path) -> None:
    before = load_pool(pool_copy).primes
    taken = take_primes(pool_copy, 2, allow_test_material=True)
    assert taken == list(before[:2])
    after = load_pool(pool_copy)
    assert after.primes == before[2:]
    assert after.test_material and after.bits == 1024
    assert not set(taken) & set(after.primes)
    again = take_primes(pool_copy, 1, allow_test_material=True)
    assert again == [before[2]]
    assert load_pool(pool_copy).primes == before[3:]
    assert leftover_temp_files(pool_copy.parent) == []
    # The shipped fixture itself is untouched.
    assert load_pool(FIXTURE_1024).primes == FIXTURE_PRIMES


def test_take_refuses_test_material_by_default(pool_copy: Path) -> None:
    before = pool_copy.read_bytes()
    with pytest.raises(PrimePoolError, match="test material"):
        take_primes(pool_copy, 1)
    assert pool_copy.read_bytes() == before


def test_take_from_real_pool_needs_no_flag(tmp_path: Path) -> None:
    path = write_doc(tmp_path / "real.json", list(FIXTURE_PRIMES[:3]), test=False)
    assert take_primes(path, 2) == list(FIXTURE_PRIMES[:2])
    assert load_pool(path).primes == FIXTURE_PRIMES[2:3]
    assert take_primes(path, 1) == [FIXTURE_PRIMES[2]]
    assert load_pool(path).primes == ()


def test_take_refuses_when_too_few_remain(tmp_path: Path) -> None:
    path = write_doc(tmp_path / "small.json", list(FIXTURE_PRIMES[:3]))
    before = path.read_bytes()
    with pytest.raises(PrimePoolError, match="3 primes, 4 needed"):
        take_primes(path, 4)
    assert path.read_bytes() == before


def test_repeated_prime_rejected(tmp_path: Path) -> None:
    p0, p1 = FIXTURE_PRIMES[:2]
    path = write_doc(tmp_path / "dup.json", [p0, p1, p0])
    before = path.read_bytes()
    with pytest.raises(PrimePoolError, match="repeated"):
        load_pool(path)
    with pytest.raises(PrimePoolError, match="repeated"):
        take_primes(path, 1)
    assert path.read_bytes() == before


def _composite_1024() -> int:
    c = FIXTURE_PRIMES[0] + 2
    while gmpy2.is_prime(c):
        c += 2
    return c


def test_non_prime_rejected_before_use(tmp_path: Path) -> None:
    bad = _composite_1024()
    assert bad.bit_length() == 1024
    path = write_doc(tmp_path / "bad.json", [bad, *FIXTURE_PRIMES[:2]])
    before = path.read_bytes()
    with pytest.raises(PrimePoolError, match="not a safe prime"):
        take_primes(path, 1)
    assert path.read_bytes() == before
    with pytest.raises(PrimePoolError, match="safe prime"):
        load_pool(path, verify=True)
    assert load_pool(path).primes[0] == bad  # structure is fine; only verification catches it


def test_prime_but_not_safe_rejected(tmp_path: Path) -> None:
    plain = int(gmpy2.next_prime(FIXTURE_PRIMES[0]))
    assert plain.bit_length() == 1024 and not is_safe_prime(plain)
    path = write_doc(tmp_path / "unsafe.json", [FIXTURE_PRIMES[0], plain])
    with pytest.raises(PrimePoolError):
        take_primes(path, 2)
    assert len(load_pool(path).primes) == 2
    with pytest.raises(PrimePoolError):
        load_pool(path, verify=True)


def test_wrong_bit_length_rejected(tmp_path: Path) -> None:
    path = write_doc(tmp_path / "bits.json", list(FIXTURE_PRIMES[:2]), bits=1536)
    with pytest.raises(PrimePoolError, match="1536-bit"):
        load_pool(path)


@pytest.mark.parametrize(
    "content",
    ["not json", "{}", json.dumps({"format": "other/v1", "bits": 1024, "primes": []})],
    ids=["garbage", "empty", "wrong-format"],
)
def test_unreadable_pool_rejected(tmp_path: Path, content: str) -> None:
    path = tmp_path / "x.json"
    path.write_text(content)
    with pytest.raises(PrimePoolError):
        load_pool(path)


def test_missing_pool_rejected(tmp_path: Path) -> None:
    with pytest.raises(PrimePoolError):
        load_pool(tmp_path / "absent.json")


# ---- mpc-primes CLI ----
# The CLI refuses --bits below 512, so the real runs use 512-bit primes (~0.1 s each).


def test_cli_writes_then_appends(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "pool.json"
    assert primes_cli.main(["--bits", "512", "--count", "3", "--out", str(out)]) == 0
    first = load_pool(out, verify=True)
    assert first.bits == 512 and len(first.primes) == 3
    assert not first.test_material
    assert all(p % 4 == 3 for p in first.primes)
    err = capsys.readouterr().err
    for i in (1, 2, 3):
        assert f"prime {i}/3" in err
    assert "done" in err  # one line per prime when stderr is not a terminal
    assert f"{out}: 3 safe primes of 512 bits" in err

    assert primes_cli.main(["--bits", "512", "--count", "2", "--out", str(out)]) == 0
    second = load_pool(out, verify=True)
    assert second.primes[:3] == first.primes
    assert len(second.primes) == 5
    assert "5 safe primes of 512 bits" in capsys.readouterr().err
    assert leftover_temp_files(tmp_path) == []


def test_cli_test_material_label(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "t.json"
    args = ["--bits", "512", "--count", "1", "--out", str(out)]
    assert primes_cli.main([*args, "--test-material"]) == 0
    assert load_pool(out).test_material
    with pytest.raises(PrimePoolError):
        take_primes(out, 1)
    # Appending unlabelled primes to a test pool (or the reverse) is refused.
    assert primes_cli.main(args) == 2
    assert "labelling" in capsys.readouterr().err
    assert len(load_pool(out).primes) == 1


def test_cli_refuses_other_bits(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "p.json"
    write_doc(out, list(FIXTURE_PRIMES[:1]))
    before = out.read_bytes()
    assert primes_cli.main(["--bits", "512", "--count", "1", "--out", str(out)]) == 2
    assert "other bits" in capsys.readouterr().err
    assert out.read_bytes() == before


def test_cli_refuses_corrupt_pool(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "p.json"
    out.write_text("{broken")
    assert primes_cli.main(["--bits", "512", "--count", "1", "--out", str(out)]) == 2
    assert "error" in capsys.readouterr().err
    assert out.read_text() == "{broken"


@pytest.mark.parametrize(
    "args",
    [["--bits", "128", "--count", "3"], ["--bits", "512", "--count", "0"]],
    ids=["bits-too-small", "count-zero"],
)
def test_cli_rejects_bad_arguments(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    out = tmp_path / "p.json"
    with pytest.raises(SystemExit) as exc:
        primes_cli.main([*args, "--out", str(out)])
    assert exc.value.code == 2
    assert "--bits at least 512" in capsys.readouterr().err
    assert not out.exists()
