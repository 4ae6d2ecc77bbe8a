"""Session-wide protocol material, built once: aux info is the expensive part (128-fold
Π^mod/Π^prm per party and peer), and it does not depend on the key, so one 5-party run
serves every key over parties 1..5 and one 3-party run every key over parties 1..3.

Paillier primes are TEST ONLY public fixtures: party i uses primes[2i] and primes[2i+1].
"""

from __future__ import annotations

import pytest

from mpcnode.protocol import aux_info
from mpcnode.protocol.key_share import AuxInfo, KeyShare
from mpcnode.sim.simulator import run_aux_info, run_keygen
from test_only.seeded_random import SeededRandom
from testing.protocol_harness import (
    FIVE,
    PROFILE,
    THREE,
    Key,
    Trace,
    aux_config,
    party_primes,
    presign_traced,
    run_traced,
)


@pytest.fixture(scope="session")
def aux3_trace() -> Trace:
    """A recorded honest 3-party aux-info run: attack tests replay its rounds."""
    rng = SeededRandom(b"conftest/aux3")
    nonce = b"aux3-nonce".ljust(32, b"\0")
    starts = {i: aux_info.start(aux_config(i, THREE, nonce), rng) for i in THREE}
    return run_traced(starts, rng)


@pytest.fixture(scope="session")
def aux3(aux3_trace: Trace) -> dict[int, AuxInfo]:
    return aux3_trace.results


@pytest.fixture(scope="session")
def aux5() -> dict[int, AuxInfo]:
    primes = {i: party_primes(i) for i in FIVE}
    return run_aux_info(FIVE, b"", PROFILE, primes, b"aux5-nonce".ljust(32, b"\0"),
                        SeededRandom(b"conftest/aux5"))


def _keygen(parties: tuple[int, ...], t: int) -> dict[int, KeyShare]:
    tag = b"conftest/keygen/%d-of-%d" % (t, len(parties))
    return run_keygen(parties, t, tag.ljust(32, b"\0"), SeededRandom(tag))


@pytest.fixture(scope="session")
def key23(aux3: dict[int, AuxInfo]) -> Key:
    return Key(_keygen(THREE, 2), aux3)


@pytest.fixture(scope="session")
def key25(aux5: dict[int, AuxInfo]) -> Key:
    return Key(_keygen(FIVE, 2), aux5)


@pytest.fixture(scope="session")
def key35(aux5: dict[int, AuxInfo]) -> Key:
    return Key(_keygen(FIVE, 3), aux5)


@pytest.fixture(scope="session")
def key55(aux5: dict[int, AuxInfo]) -> Key:
    return Key(_keygen(FIVE, 5), aux5)


@pytest.fixture(scope="session")
def presign23_trace(key23: Key) -> Trace:
    """A recorded 2-of-3 presigning run, signers (1, 2), root key."""
    return presign_traced(key23, (1, 2), b"conftest/presign23")


@pytest.fixture(scope="session")
def presign35_trace(key35: Key) -> Trace:
    """A recorded 3-of-5 presigning run, signers (1, 3, 4), root key."""
    return presign_traced(key35, (1, 3, 4), b"conftest/presign35")
