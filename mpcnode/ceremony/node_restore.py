"""Bring a node back on a new host from its backup (``mpc-ceremony restore``).

The new host directory gets what ``mpc-ceremony init`` gives a node (a TLS certificate
from the cluster CA, fresh identity keys under a fresh passphrase, node.toml) and the
restored share and aux info sealed under the node's configured seal (``NodeConfig.open_seal``). Its
identity keys are new, so it also gets ``identity-change.json``: the change from the
identity cluster.toml names now to the new one, for the admin quorum to sign and for
``mpc-ceremony identity-change apply`` to install (identity_change.py). Nothing is
restored before the caller has checked the backup's labels against the key's current
public data (``share_backup.check_labels``): a share of an older epoch never gets here.
The key's ceremony history (its sessions so far, from the same verified transcript) goes
into the new host's ceremony log, as the lost node had it, so that its closing record of
the key's next refresh or reshare lists the same sessions as the other nodes'.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mpcnode.ceremony.cluster_file import ClusterConfig
from mpcnode.ceremony.cluster_init import NODE_SAN_DEFAULTS, make_node_host, node_layout
from mpcnode.ceremony.identity_change import IdentityChange, to_json
from mpcnode.ceremony.node_config import load_node_config
from mpcnode.ceremony.share_backup import BackupPayload
from mpcnode.core.errors import UsageError
from mpcnode.state.atomic_file import write_public
from mpcnode.state.ceremony_log import CeremonyLog
from mpcnode.state.node_store import NodeStore
from mpcnode.transport.ceremony_closing import SessionRef
from mpcnode.transport.net_address import parse_address

CHANGE_FILE = "identity-change.json"


class RestoreError(UsageError):
    """The restore cannot proceed (target directory in use, node unknown to the cluster)."""


@dataclass(frozen=True)
class RestoredNode:
    node_toml: Path
    change_file: Path  # the unsigned identity change
    change: IdentityChange


def restore_node(cluster: ClusterConfig, payload: BackupPayload, out: Path, *,
                 ca: tuple[bytes, bytes], ca_cert_path: Path,
                 history: Sequence[SessionRef], address: str | None = None) -> RestoredNode:
    """Write a new host directory ``out`` for the node of ``payload`` (its address
    ``address``, else the one cluster.toml names)."""
    i = payload.share.party
    entry = cluster.nodes.get(i)
    if entry is None:
        raise RestoreError(f"node {i} is not in {cluster.path}")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise RestoreError(f"{out} exists and is not empty: a restore starts on a new host "
                           "directory")
    listen = address or entry.address
    host = parse_address(listen)[0]
    out.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        layout = node_layout(out.absolute())
        ident = make_node_host(layout, i, listen, ca, ca_cert_path, cluster.path,
                               list(dict.fromkeys([host, *NODE_SAN_DEFAULTS])),
                               metrics_listen=None)
        cfg = load_node_config(layout.node_toml)  # the files it names exist and check
        with NodeStore(cfg.data_dir, cfg.open_seal()) as store:
            store.put_key_share(payload.share)
            store.put_aux_info(payload.share.public.key_id, payload.aux)
        for ref in history:
            CeremonyLog(cfg.data_dir).append(payload.share.public.key_id, ref)
        change = IdentityChange(
            cluster.name, i, entry.identity, ident.public, listen, layout.tls_cert.read_bytes(),
            f"restore of key {payload.share.public.key_id.hex()} at epoch "
            f"{payload.share.public.epoch} from backup")
        change_file = out / CHANGE_FILE
        write_public(change_file, to_json(change, ()))
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise
    return RestoredNode(layout.node_toml, change_file, change)
