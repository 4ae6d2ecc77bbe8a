"""TEST ONLY: the ``[testing]`` section of node.toml.

    [testing]
    crash_after_consume = true        # die right after marking a presignature consumed
    allow_test_primes = true          # accept the [primes] pool although it is TEST MATERIAL
    sign_unauthorized_digests = true  # sign a bare digest: no transaction, policy, approvals

``mpcnode serve`` refuses a node.toml with this section; only the test entry point
(``python -m test_only.node_daemon``) reads it. The section follows the same strict
schema rules as the rest of the file (unknown keys refused, booleans only).
"""

from __future__ import annotations

from pathlib import Path

from mpcnode.ceremony.config_files import read_config
from mpcnode.ceremony.node_config import (
    TESTING_SECTION,
    NodeConfig,
    dump_node_config,
    node_config_from,
)
from mpcnode.core.config_schema import StrictConfig, dumps, validate


class NodeSwitches(StrictConfig):
    """The test switches of one node; each one weakens a protection."""

    crash_after_consume: bool = False
    allow_test_primes: bool = False
    sign_unauthorized_digests: bool = False

    @property
    def active(self) -> tuple[str, ...]:
        """The names of the switches that are on, in the file's order."""
        return tuple(name for name, on in self.model_dump().items() if on)


class _TestingSection(StrictConfig):
    """Puts the section's name in front of its keys in error messages."""

    testing: NodeSwitches = NodeSwitches()


def load_test_node_config(path: Path) -> tuple[NodeConfig, NodeSwitches]:
    """A node.toml with an optional ``[testing]`` section: the production config (same
    checks as ``load_node_config``) and the switches."""
    path = path.absolute()
    document = read_config(path)
    section = {TESTING_SECTION: document.pop(TESTING_SECTION)} if TESTING_SECTION in document \
        else {}
    switches = validate(_TestingSection, section, path).testing
    return node_config_from(path, document), switches


def dump_test_node_config(cfg: NodeConfig, switches: NodeSwitches) -> str:
    """node.toml for ``cfg``, followed by a ``[testing]`` section if any switch is on."""
    text = dump_node_config(cfg)
    if not switches.active:
        return text
    return text + "\n" + dumps({TESTING_SECTION: {name: True for name in switches.active}},
                               header="# TEST ONLY: refused by `mpcnode serve`; read by "
                                      "`python -m test_only.node_daemon`.\n")
