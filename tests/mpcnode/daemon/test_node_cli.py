"""``mpcnode serve`` honours no test switch: it refuses a node.toml with a ``[testing]``
section, and refuses to run beside the ``test_only`` package; both on one line, exit 2."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from mpcnode.ceremony.cluster_file import load_cluster_config
from mpcnode.ceremony.cluster_init import ClusterLayout, init_cluster
from mpcnode.daemon.node_cli import main

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> ClusterLayout:
    return init_cluster(tmp_path_factory.mktemp("cli") / "cluster", 1, 1)


def test_serve_refuses_a_testing_section(layout: ClusterLayout, tmp_path: Path) -> None:
    config = layout.nodes[1].directory / "testing-node.toml"
    config.write_text(layout.nodes[1].node_toml.read_text()
                      + "\n[testing]\nsign_unauthorized_digests = true\n")
    proc = subprocess.run([sys.executable, "-m", "mpcnode", "serve", "--config", str(config)],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith(f"mpcnode: {config}: testing: test-only switches are "
                                  "never honoured by `mpcnode serve`: remove the [testing] "
                                  "section")


def test_serve_refuses_to_run_beside_test_only(layout: ClusterLayout,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    # With test_only loaded in this process, a production node must not start in it,
    # even with a clean config. Load it here, so the test does not depend on what ran before.
    importlib.import_module("test_only.seeded_random")
    assert main(["serve", "--config", str(layout.nodes[1].node_toml)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("mpcnode: mpcnode serve refuses to run: the TEST ONLY package "
                          "'test_only' is loaded")


def test_fingerprint_prints_the_identity_the_transcript_names(
        layout: ClusterLayout, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fingerprint", "--config", str(layout.nodes[1].node_toml)]) == 0
    published = load_cluster_config(layout.cluster_file).nodes[1].identity.fingerprint
    assert capsys.readouterr().out == f"node 1: {published}\n"
