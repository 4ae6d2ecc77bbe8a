"""The test entry point against real processes: ``python -m test_only.node_daemon`` logs
a warning per active switch and reports the switches in ``Info``; a node started by
``mpcnode serve`` reports none."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from coordinator.coordinator import Coordinator
from mpcnode.ceremony.cluster_file import load_coordinator_config
from mpcnode.ceremony.cluster_init import init_cluster
from test_only.node_switches import NodeSwitches, dump_test_node_config, load_test_node_config
from testing.cluster_harness import ProcessCluster, free_port_base, node_command
from testing.integration_support import stop_all

ROOT = Path(__file__).resolve().parents[2]


def test_switches_are_logged_and_reported_in_info(tmp_path: Path) -> None:
    base = free_port_base(2)
    init_cluster(tmp_path / "c", 2, 2, base_port=base, metrics_base_port=base + 1000)
    procs = ProcessCluster(tmp_path / "c")
    cfg, _ = load_test_node_config(procs.config(1))
    procs.config(1).write_text(dump_test_node_config(
        cfg, NodeSwitches(crash_after_consume=True, sign_unauthorized_digests=True)))
    assert node_command(procs.config(1))[1:3] == ["-m", "test_only.node_daemon"]
    assert node_command(procs.config(2))[1:3] == ["-m", "mpcnode"]
    try:
        procs.start(1)
        procs.start(2)
        with Coordinator(load_coordinator_config(tmp_path / "c"), timeout=30.0) as coordinator:
            procs.wait_healthy(coordinator, {1, 2}, timeout=60.0)
            assert list(coordinator.clients[1].info().test_switches) == [
                "crash_after_consume", "sign_unauthorized_digests"]
            assert list(coordinator.clients[2].info().test_switches) == []
    finally:
        stop_all(procs)
    warnings = [json.loads(line) for line in
                (tmp_path / "c" / "node1" / "node.log").read_text().splitlines()
                if "TEST_ONLY_switch" in line]
    assert [w["switch"] for w in warnings] == ["crash_after_consume",
                                               "sign_unauthorized_digests"]
    assert "TEST_ONLY" not in (tmp_path / "c" / "node2" / "node.log").read_text()


@pytest.mark.parametrize(("section", "message"), [
    ("crash_after_consume = 1", "testing.crash_after_consume: Input should be a valid boolean"),
    ("allow_test_primes = true", "testing.allow_test_primes: needs a [primes] pool to allow"),
])
def test_bad_switches_stop_the_test_node_on_one_line(tmp_path: Path, section: str,
                                                     message: str) -> None:
    layout = init_cluster(tmp_path / "c", 1, 1)
    config = layout.nodes[1].node_toml
    config.write_text(config.read_text() + f"\n[testing]\n{section}\n")
    proc = subprocess.run(node_command(config), capture_output=True, text=True, cwd=ROOT,
                          timeout=120)
    assert proc.returncode == 2
    assert proc.stderr == f"python -m test_only.node_daemon: {config}: {message}\n"
