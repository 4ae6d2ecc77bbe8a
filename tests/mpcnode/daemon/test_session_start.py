"""A node serves sessions only for keys of its own cluster: a share of another threshold
or committee that it holds (made before parameters were checked, or planted) is refused
for every protocol, naming the key, however the request is phrased."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from mpcnode.daemon.node import SignerNode
from mpcnode.protocol.session_params import ParameterRefused
from mpcnode.rpc import node_pb2 as pb
from mpcnode.sim.simulator import run_keygen
from mpcnode.state.node_store import NodeStore
from mpcnode.state.policy_state import PolicyState
from mpcnode.state.seal import Sealer
from mpcnode.transport.identity import IdentityKeys
from test_only.seeded_random import SeededRandom
from testing.protocol_harness import THREE, party_primes
from testing.store_material import KEK


@pytest.fixture
def node(tmp_path: Path) -> Iterator[SignerNode]:
    keys = {i: IdentityKeys.generate(i) for i in THREE}
    admin = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw,
                                                                  PublicFormat.Raw)
    store = NodeStore(tmp_path, Sealer(KEK))
    policy = PolicyState(tmp_path, {"admin": admin}, 1)
    policy.attach(store)
    made = SignerNode(1, keys[1], {j: k.public for j, k in keys.items()}, store,
                      lambda _profile: party_primes(1), SeededRandom(b"start"), threshold=2,
                      policy=policy)
    yield made
    store.close()
    policy.close()


@pytest.mark.parametrize(("parties", "threshold"), [((1, 2, 3), 3), ((1, 2, 3), 1)])
def test_a_key_of_another_threshold_serves_no_session(
        node: SignerNode, parties: tuple[int, ...], threshold: int) -> None:
    foreign = run_keygen(parties, threshold, b"foreign".ljust(32, b"\0"), SeededRandom(b"f"))
    node.store.put_key_share(foreign[1])
    key_id = foreign[1].public.key_id
    for protocol, signers in (("aux_info", parties), ("refresh", parties),
                              ("presign", parties[:threshold])):
        req = pb.StartSessionRequest(protocol=protocol, nonce=b"\x01" * 32,
                                     parties=list(signers), key_id=key_id)
        with pytest.raises(ParameterRefused, match=f"{protocol} refused: key_id "
                           f"'{key_id.hex()}' names a {threshold}-of-"):
            node.start(req)
    assert node.session_count == 0
    # Nor a sign request: a presignature made before cluster.toml's t changed is refused
    # with the key, before the presignature is looked up.
    with pytest.raises(ParameterRefused, match=f"sign refused: key_id '{key_id.hex()}' "
                       f"names a {threshold}-of-"):
        node.sign(pb.SignRequest(key_id=key_id, digest=b"\x02" * 32, request_id="r/0",
                                 presignature_id=b"\x03" * 32))
