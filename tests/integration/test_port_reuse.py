"""A daemon never shares its port: gRPC's SO_REUSEPORT is off on every server, and a taken
port ends ``mpcnode serve`` and ``oms serve`` with one line naming the address (no
traceback), before the second process opens any state. Real processes."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from coordinator.coordinator import Coordinator
from mpcnode.ceremony.cluster_file import load_coordinator_config
from mpcnode.ceremony.cluster_init import ClusterLayout, init_cluster
from oms_core.cli.oms_cli import main as oms_main
from testing.cluster_harness import free_port_base

ROOT = Path(__file__).resolve().parents[2]
DEMO = ["--demo-person", "tina:trader", "--demo-person", "rita:risk_officer",
        "--demo-person", "andy:approver", "--demo-person", "admin1:admin",
        "--demo-person", "admin2:admin"]


def mpcnode_serve(config: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "mpcnode", "serve", "--config", str(config)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=ROOT)


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> ClusterLayout:
    base = free_port_base(1)
    return init_cluster(tmp_path_factory.mktemp("ports") / "cluster", 1, 1, base_port=base,
                        metrics_base_port=base + 1000)


@pytest.fixture
def held_port() -> Iterator[int]:
    """A port some other program listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def assert_one_line_listen_error(stderr: str, prefix: str, address: str) -> None:
    assert "Traceback" not in stderr, stderr
    [line] = [x for x in stderr.splitlines() if x.strip()]
    assert line.startswith(f"{prefix}cannot listen on {address}: the address is already in "
                           "use"), line


def test_a_second_node_on_the_same_port_exits_and_the_first_keeps_serving(
        layout: ClusterLayout) -> None:
    config = layout.nodes[1].node_toml
    first = mpcnode_serve(config)
    try:
        with Coordinator(load_coordinator_config(layout.root), timeout=10.0) as coordinator:
            deadline = time.monotonic() + 60
            while coordinator.healthy() != [1]:
                assert first.poll() is None and time.monotonic() < deadline
                time.sleep(0.2)
            address = coordinator.clients[1].address
            second = mpcnode_serve(config)
            _, err = second.communicate(timeout=120)
            assert second.returncode == 2
            assert_one_line_listen_error(err, "mpcnode: ", address)
            assert coordinator.healthy() == [1]  # the first node alone still answers
            assert coordinator.clients[1].info().party == 1
    finally:
        first.terminate()
        first.communicate(timeout=30)


def test_a_node_whose_port_is_taken_says_so_on_one_line(tmp_path: Path,
                                                        held_port: int) -> None:
    layout = init_cluster(tmp_path / "cluster", 1, 1, base_port=held_port - 1,
                          metrics_base_port=free_port_base(1))
    proc = mpcnode_serve(layout.nodes[1].node_toml)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2
    assert_one_line_listen_error(err, "mpcnode: ", f"127.0.0.1:{held_port}")
    assert not (layout.nodes[1].directory / "data").exists()  # no state was opened


def test_oms_serve_on_a_taken_port_says_so_on_one_line(tmp_path: Path, held_port: int,
                                                       capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    cluster = tmp_path / "cluster"
    base = free_port_base(3)
    init_cluster(cluster, 3, 2, base_port=base, metrics_base_port=base + 1000)
    assert oms_main(["init", "--cluster", str(cluster), "--key-id", "ab" * 32, "--out",
                     str(tmp_path / "oms"), "--listen", f"127.0.0.1:{held_port}",
                     *DEMO]) == 0
    capsys.readouterr()
    proc = subprocess.run([sys.executable, "-m", "oms_core.cli.oms_cli", "serve", "--config",
                           str(tmp_path / "oms" / "oms.toml")],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode != 0
    assert_one_line_listen_error(proc.stderr, "ListenError: ", f"127.0.0.1:{held_port}")
    assert not (tmp_path / "oms" / "oms.sqlite3").exists()  # the state was not opened
