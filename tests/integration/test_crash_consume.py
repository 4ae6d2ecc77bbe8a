"""A node killed between "presignature marked consumed" and its reply (TEST ONLY
crash_after_consume: exit 137 right after the journal's fdatasync). After a restart the
presignature must stay used: a new request for it is refused, a repeat of the same
request gets the same σ_i, and the cluster keeps signing with other presignatures."""

from __future__ import annotations

import hashlib

import grpc
import pytest

from coordinator.coordinator import SessionAbortedError
from mpcnode.crypto.group import Q
from mpcnode.protocol.sign import SignatureShare, combine, rerandomize
from mpcnode.rpc import node_pb2 as pb
from test_only.crash_hook import CRASH_EXIT_CODE
from test_only.node_switches import dump_test_node_config, load_test_node_config
from testing.integration_support import openssl_verifies, process_cluster

SIGNERS = (1, 2)


def test_crash_after_consume_keeps_the_presignature_used(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    root = tmp_path_factory.mktemp("crash") / "cluster"
    with process_cluster(root, 3, 2, crash_after_consume={1}) as (procs, coordinator):
        key, _ = coordinator.keygen()
        coordinator.aux_info(key.key_id)
        first, second = coordinator.presign(key.key_id, SIGNERS, count=2)
        pub = key.public_key.to_bytes()
        digest = hashlib.sha256(b"crash at the worst moment").digest()

        # The coordinator takes the oldest presignature; node 1 commits and dies.
        with pytest.raises(SessionAbortedError):
            coordinator.sign(key.key_id, digest, request_id="crash", healthy=SIGNERS)
        assert procs.wait_exit(1) == CRASH_EXIT_CODE
        assert CRASH_EXIT_CODE == 137

        # Restart node 1 without the crash flag.
        path = procs.config(1)
        cfg, switches = load_test_node_config(path)
        path.write_text(dump_test_node_config(
            cfg, switches.model_copy(update={"crash_after_consume": False})))
        assert not load_test_node_config(path)[1].crash_after_consume
        procs.start(1)
        procs.wait_healthy(coordinator, {1, 2, 3})
        node1 = coordinator.clients[1]
        assert list(node1.info().test_switches) == ["allow_test_primes",
                                                    "sign_unauthorized_digests"]

        def request(request_id: str, d: bytes = digest) -> pb.SignRequest:
            return pb.SignRequest(key_id=key.key_id, digest=d,
                                  presignature_id=first.session, request_id=request_id)

        # A new request for the same presignature: refused, even for the same digest.
        for d in (digest, hashlib.sha256(b"another message").digest()):
            with pytest.raises(grpc.RpcError) as exc:
                node1.sign(request("a-new-request", d))
            assert exc.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert "PresignatureError" in exc.value.details()
            assert "already used" in exc.value.details()

        # The same request (the coordinator sent "<id>/<attempt>"): the stored σ_1, again.
        again = [node1.sign(request("crash/0")) for _ in range(2)]
        assert again[0].sigma == again[1].sigma
        assert (again[0].party, again[0].presignature_id) == (1, first.session)
        # It is the σ_1 that was lost in the crash: with node 2's (also stored) σ_2 for the
        # same request it completes a valid signature on the digest.
        sigma2 = coordinator.clients[2].sign(request("crash/0"))
        shares = {r.party: SignatureShare(r.party, first.session, int.from_bytes(r.sigma, "big"))
                  for r in (again[0], sigma2)}
        sig = combine(first, shares, rerandomize(first, key.chain_code, (), digest))
        assert openssl_verifies(pub, digest, sig)

        # The pool on node 1 no longer offers the used presignature, only the second one.
        [k] = node1.info().keys
        assert [list(level.ids) for level in k.pool] == [[second.session]]

        # And the coordinator still signs, with the other presignature.
        digest2 = hashlib.sha256(b"after the crash").digest()
        assert coordinator.pool_level(key.key_id, SIGNERS) == 1
        sig2 = coordinator.sign(key.key_id, digest2, healthy=SIGNERS)
        assert openssl_verifies(pub, digest2, sig2)
        assert coordinator.pool_level(key.key_id, SIGNERS) == 0
        assert sig2.r == rerandomize(second, key.chain_code, (), digest2).r != second.R.x % Q
