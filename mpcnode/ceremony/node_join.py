"""What a node that joins a key's committee is given before its first reshare, written
into its own sealed store while it is stopped (``mpc-ceremony add-node``).

A joining node holds no share, yet in a reshare it must check that the dealt constant
terms sum to the key's public key and match the old public shares: a coordinator must
not be able to make it accept another key. So it takes the key's public data only from a
transcript the ceremony verified, sealed in its store (``NodeStore.put_key_public``), and
the key's ceremony history (the sessions before it joined), so that its closing record
of the key lists the same sessions as the old members'.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from mpcnode.ceremony.node_config import NodeConfig
from mpcnode.core.errors import UsageError
from mpcnode.protocol.key_share import PublicKeyData
from mpcnode.state.ceremony_log import CeremonyLog
from mpcnode.state.node_store import NodeStore
from mpcnode.transport.ceremony_closing import SessionRef


class NodeJoinError(UsageError):
    """A node cannot be given this key (it already knows it)."""


def open_node_store(cfg: NodeConfig, after_consume: Callable[[], None] | None = None
                    ) -> NodeStore:
    """The node's store under its configured seal (refused if the passphrase or token is
    wrong); the data directory is made on first use."""
    seal = cfg.open_seal()
    try:
        return NodeStore(cfg.data_dir, seal, after_consume=after_consume)
    except BaseException:
        seal.close()
        raise


def give_key(cfg: NodeConfig, public: PublicKeyData, history: Sequence[SessionRef]) -> None:
    """Seal the verified public data of a key into a stopped node's store, with the key's
    ceremony history; refused if the node already knows the key."""
    log = CeremonyLog(cfg.data_dir)
    store = open_node_store(cfg)
    try:
        if log.sessions(public.key_id):
            raise NodeJoinError(f"node {cfg.node_id} already has a ceremony history of key "
                                f"{public.key_id.hex()}")
        store.put_key_public(public)
    finally:
        store.close()
    for ref in history:
        log.append(public.key_id, ref)
