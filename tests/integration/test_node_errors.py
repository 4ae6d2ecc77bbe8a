"""How real signer nodes answer what goes wrong: a refusal by its status and reason, a
bug as INTERNAL with an error id that the node's log holds (with the traceback), and never
INTERNAL for a malformed request such as deeply nested policy JSON."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from coordinator.coordinator import Coordinator
from mpcnode.state.ceremony_log import LOG_DIR
from test_only.node_switches import load_test_node_config
from testing.integration_support import process_cluster


@dataclass
class Setup:
    root: Path
    coordinator: Coordinator
    key_id: bytes


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    root = tmp_path_factory.mktemp("errors") / "cluster"
    with process_cluster(root, 2, 2) as (_procs, coordinator):
        key, _ = coordinator.keygen()
        yield Setup(root, coordinator, key.key_id)


def refusal(call: object) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as exc:
        call()  # type: ignore[operator]
    return exc.value


def test_an_internal_fault_is_internal_with_an_id_the_node_logs(setup: Setup) -> None:
    data = load_test_node_config(setup.root / "node1" / "node.toml")[0].data_dir
    (data / LOG_DIR / f"{setup.key_id.hex()}.json").write_text("{}")  # damaged on disk
    err = refusal(lambda: setup.coordinator.clients[1].close_transcript(setup.key_id))
    assert err.code() == grpc.StatusCode.INTERNAL
    match = re.fullmatch(r"internal error ([0-9a-f]{16}) \(the node's log has the details\)",
                         str(err.details()))
    assert match, err.details()
    log = (setup.root / "node1" / "node.log").read_text()
    assert f'"error_id": "{match.group(1)}"' in log
    assert "CeremonyLogError" in log.split(match.group(1), 1)[1]  # the traceback follows
    assert setup.coordinator.clients[2].close_transcript(setup.key_id).party == 2


def test_an_unknown_key_is_not_found(setup: Setup) -> None:
    err = refusal(lambda: setup.coordinator.clients[2].close_transcript(b"\x05" * 32))
    assert err.code() == grpc.StatusCode.NOT_FOUND
    assert "no keyshare stored for key 0505" in str(err.details())


@pytest.mark.parametrize("depth", [65, 900, 100_000])
def test_deeply_nested_policy_json_is_refused_not_internal(setup: Setup, depth: int) -> None:
    bundle = b"[" * depth + b"]" * depth
    for client in setup.coordinator.clients.values():
        err = refusal(lambda c=client: c.install_policy(bundle))
        assert err.code() in (grpc.StatusCode.PERMISSION_DENIED,
                              grpc.StatusCode.INVALID_ARGUMENT), err.details()
        assert "nested more than 64 deep" in str(err.details())
