"""The ``[testing]`` section of node.toml: read only by the test entry point, as strictly
as the rest of the file."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from mpcnode.ceremony.cluster_init import ClusterLayout, init_cluster
from mpcnode.ceremony.node_config import load_node_config
from mpcnode.core.config_schema import ConfigError
from mpcnode.daemon.node_server import NO_HOOKS
from test_only.bare_digest_signing import sign_bare_digest
from test_only.crash_hook import crash
from test_only.node_daemon import node_hooks
from test_only.node_switches import NodeSwitches, dump_test_node_config, load_test_node_config


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> ClusterLayout:
    return init_cluster(tmp_path_factory.mktemp("switches") / "cluster", 1, 1)


@pytest.fixture
def config(layout: ClusterLayout, tmp_path: Path) -> Path:
    """A node.toml beside the original (so its relative paths resolve), left to edit."""
    path = layout.nodes[1].directory / f"{tmp_path.name}.toml"
    path.write_text(layout.nodes[1].node_toml.read_text())
    return path


def test_without_a_section_every_switch_is_off(config: Path) -> None:
    cfg, switches = load_test_node_config(config)
    assert cfg == dataclasses.replace(load_node_config(config), path=config)
    assert switches == NodeSwitches() and switches.active == ()


def test_dump_and_load_round_trip(config: Path) -> None:
    cfg, _ = load_test_node_config(config)
    switches = NodeSwitches(crash_after_consume=True, sign_unauthorized_digests=True)
    config.write_text(dump_test_node_config(cfg, switches))
    assert "# TEST ONLY" in config.read_text()
    assert load_test_node_config(config) == (cfg, switches)
    assert switches.active == ("crash_after_consume", "sign_unauthorized_digests")
    # The production loader refuses the same file.
    with pytest.raises(ConfigError, match="remove the"):
        load_node_config(config)
    # No switch on: no section, and the production loader accepts it.
    config.write_text(dump_test_node_config(cfg, NodeSwitches()))
    assert load_node_config(config) == cfg


@pytest.mark.parametrize(("section", "key"), [
    ('crash_after_consume = "yes"', "testing.crash_after_consume"),
    ("allow_test_primes = 1", "testing.allow_test_primes"),
    ("sign_everything = true", "testing.sign_everything"),
])
def test_bad_switches_are_refused(config: Path, section: str, key: str) -> None:
    config.write_text(config.read_text() + f"\n[testing]\n{section}\n")
    with pytest.raises(ConfigError) as exc:
        load_test_node_config(config)
    assert exc.value.key == key and exc.value.file == config


def test_hooks_follow_the_switches(config: Path) -> None:
    cfg, _ = load_test_node_config(config)
    assert node_hooks(cfg, NodeSwitches()) == NO_HOOKS
    hooks = node_hooks(cfg, NodeSwitches(crash_after_consume=True,
                                         sign_unauthorized_digests=True))
    assert hooks.switches == ("crash_after_consume", "sign_unauthorized_digests")
    assert hooks.after_consume is crash and hooks.unauthorized is sign_bare_digest
    assert hooks.primes is None
    with pytest.raises(ConfigError, match="needs a \\[primes\\] pool") as exc:
        node_hooks(cfg, NodeSwitches(allow_test_primes=True))
    assert exc.value.key == "testing.allow_test_primes"
    pooled = dataclasses.replace(cfg, prime_pool=config.parent / "primes.json")
    assert node_hooks(pooled, NodeSwitches(allow_test_primes=True)).primes is not None
