"""A node's new identity, made known to the cluster by an admin-quorum-signed change.

When a node comes back on a new host (``mpc-ceremony restore``) it has new identity keys
(Ed25519 for its protocol messages, X25519 for the private ones) and a new TLS
certificate. Peers verify its messages against cluster.toml, so cluster.toml must name the
new keys; the change says which node, from which identity (the one cluster.toml holds
now, so a change applies once and only to the cluster it was made for) to which, at which
address, with which certificate. It counts only with the signatures of the admin quorum
fixed in cluster.toml at the ceremony, the same admins and quorum that sign policy
bundles, over a domain tag of their own (a bundle signature is never an identity change).
``apply`` keeps the signed change under the cluster directory; the key's next refresh or
reshare records it in the key's ceremony transcript, whose verifier checks it with the same
``check_change`` against the identities in force at that point of the key's history.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from mpcnode.ceremony import pki
from mpcnode.ceremony.cluster_file import ClusterConfig, NodeEntry
from mpcnode.core.canonical_json import CanonicalJSONError, canonical_json, parse_json
from mpcnode.core.errors import MpcnodeError
from mpcnode.transport.identity import IdentityKeyError, IdentityPublic
from zero_trust.admin_signatures import count_admin_signatures

FORMAT = "mpc-identity-change/1"
_SIGNED_TAG = b"mpc-identity-change-signature/v1\x00"
_TOP = frozenset({"format", "change", "signatures"})
_CHANGE = frozenset({"cluster", "node", "old_signing_key", "old_kex_key", "new_signing_key",
                     "new_kex_key", "address", "tls_cert", "reason"})
_SIGNATURE = frozenset({"admin_id", "signature"})
MAX_CHANGE_BYTES = 64 * 1024
APPLIED_DIR = "identity_changes"  # under the cluster directory


class IdentityChangeError(MpcnodeError):
    """An identity change is malformed, not signed by the admin quorum, or does not apply
    to this cluster file."""


@dataclass(frozen=True)
class IdentityChange:
    cluster: str
    node: int
    old: IdentityPublic  # what cluster.toml names now
    new: IdentityPublic
    address: str  # "host:port" where the coordinator dials the node from now on
    tls_cert: bytes  # PEM of the new host's certificate (public)
    reason: str

    def body(self) -> dict[str, object]:
        return {"cluster": self.cluster, "node": self.node,
                "old_signing_key": self.old.signing_key_hex, "old_kex_key": self.old.kex_key_hex,
                "new_signing_key": self.new.signing_key_hex, "new_kex_key": self.new.kex_key_hex,
                "address": self.address, "tls_cert": self.tls_cert.decode("ascii"),
                "reason": self.reason}

    @property
    def digest(self) -> bytes:
        return hashlib.sha256(canonical_json(self.body())).digest()


@dataclass(frozen=True)
class AdminSignature:
    admin_id: str
    signature: bytes  # Ed25519 over _SIGNED_TAG ‖ digest


def sign_change(change: IdentityChange, key: Ed25519PrivateKey, admin_id: str) -> AdminSignature:
    return AdminSignature(admin_id, key.sign(_SIGNED_TAG + change.digest))


def verify_change(change: IdentityChange, signatures: Sequence[AdminSignature],
                  cluster: ClusterConfig,
                  retired: Collection[IdentityPublic] = ()) -> tuple[str, ...]:
    """The admins whose signatures count; raises unless the quorum signed and the change
    applies to ``cluster`` as it is now. ``retired``: identities earlier changes replaced
    (a restore replaces an identity because its host was lost or compromised, so its keys
    never come back, however many admins sign a change back to them)."""
    return check_change(change, signatures, cluster_name=cluster.name,
                        identities={i: e.identity for i, e in cluster.nodes.items()},
                        admins=cluster.admins, quorum=cluster.admin_quorum,
                        where=str(cluster.path), retired=retired)


def check_change(change: IdentityChange, signatures: Sequence[AdminSignature], *,
                 cluster_name: str, identities: Mapping[int, IdentityPublic],
                 admins: Mapping[str, bytes], quorum: int, where: str,
                 retired: Collection[IdentityPublic] = ()) -> tuple[str, ...]:
    """The admins whose signatures count; raises unless the quorum of ``admins`` signed,
    the change's old identity is the one in force (``identities``, as ``where`` names
    them) and the new one reuses no key of a node or of a ``retired`` identity. The one
    check of a change: ``apply`` runs it on cluster.toml, the transcript verifier on the
    identities in force between two sessions of a key."""
    if change.cluster != cluster_name:
        raise IdentityChangeError(f"the change is for cluster {change.cluster!r}, not "
                                  f"{cluster_name!r}")
    current = identities.get(change.node)
    if current is None:
        raise IdentityChangeError(f"node {change.node} is not in {where}")
    if current != change.old:
        raise IdentityChangeError(
            f"node {change.node}'s identity in {where} is not the change's old "
            "identity: the change was applied already, or made against another cluster file")
    for party, other in identities.items():
        if party != change.node and {other.signing_key, other.kex_key} & {
                change.new.signing_key, change.new.kex_key}:
            raise IdentityChangeError(f"the new identity reuses a key of node {party}")
    for gone in retired:
        if {gone.signing_key, gone.kex_key} & {change.new.signing_key, change.new.kex_key}:
            raise IdentityChangeError(f"the new identity reuses a key of node {gone.party}'s "
                                      f"retired identity {gone.fingerprint}")
    if quorum < 1:
        raise IdentityChangeError(f"{where} names no admin quorum: no identity change can "
                                  "be approved")
    return _count(change, signatures, admins, quorum)


def _count(change: IdentityChange, signatures: Sequence[AdminSignature],
           admins: Mapping[str, bytes], quorum: int) -> tuple[str, ...]:
    message = _SIGNED_TAG + change.digest
    keys = {a: Ed25519PublicKey.from_public_bytes(k) for a, k in admins.items()}
    counted, rejected = count_admin_signatures(signatures, keys, lambda _: message, "change")
    if len(counted) < quorum:
        detail = f"; not counted: {'; '.join(rejected)}" if rejected else ""
        raise IdentityChangeError(f"the identity change of node {change.node} has {len(counted)} "
                                  f"of the {quorum} admin signatures required{detail}")
    return tuple(counted)


def apply_change(cluster: ClusterConfig, change: IdentityChange,
                 signatures: Sequence[AdminSignature], ca_cert: Path,
                 cert_path: Path, retired: Collection[IdentityPublic] = ()) -> ClusterConfig:
    """``cluster`` with node ``change.node`` given its new identity, address and
    certificate (written to ``cert_path``), after every check of ``verify_change`` and of
    the certificate (chains to the cluster CA, names the node role and this node)."""
    verify_change(change, signatures, cluster, retired)
    try:
        chained = pki.verify_chain(change.tls_cert, ca_cert.read_bytes())
        role = pki.role_of(change.tls_cert) if chained else None
        name = pki.common_name_of(change.tls_cert) if role else None
    except (OSError, pki.PkiError) as exc:
        raise IdentityChangeError(f"the change's TLS certificate does not check: {exc}") from None
    if role != pki.ROLE_NODE:
        raise IdentityChangeError(f"the change's TLS certificate is not a node certificate "
                                  f"issued by {ca_cert}")
    if name != pki.node_common_name(change.node):
        # The CA issued it to another node (its own certificate, or a spare): node N's
        # identity carries node N's certificate only.
        raise IdentityChangeError(f"the change's TLS certificate names {name!r}, not node "
                                  f"{change.node}")
    cert_path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    pki.write_public(cert_path, change.tls_cert)
    nodes = dict(cluster.nodes)
    nodes[change.node] = NodeEntry(change.node, change.address, change.new, cert_path)
    return replace(cluster, nodes=nodes)


# --------------------------------------------------------------------------- file form


def document(change: IdentityChange, signatures: Sequence[AdminSignature]
             ) -> dict[str, object]:
    """The signed change as one JSON object: the file's content, and what a key's ceremony
    transcript records where the change took effect."""
    return {"format": FORMAT, "change": change.body(),
            "signatures": [{"admin_id": s.admin_id, "signature": s.signature.hex()}
                           for s in signatures]}


def to_json(change: IdentityChange, signatures: Sequence[AdminSignature]) -> bytes:
    return canonical_json(document(change, signatures)) + b"\n"


def from_json(data: bytes) -> tuple[IdentityChange, tuple[AdminSignature, ...]]:
    if len(data) > MAX_CHANGE_BYTES:
        raise IdentityChangeError(f"an identity change has at most {MAX_CHANGE_BYTES} bytes")
    try:
        return from_document(parse_json(data, floats=False))
    except CanonicalJSONError as exc:
        raise IdentityChangeError(f"malformed identity change: {exc}") from None


def from_document(value: object) -> tuple[IdentityChange, tuple[AdminSignature, ...]]:
    """The change and its signatures from the decoded object ``document`` makes."""
    try:
        doc = _obj(value, "document", _TOP)
        if doc["format"] != FORMAT:
            raise IdentityChangeError(f"unknown format {doc['format']!r}")
        c = _obj(doc["change"], "change", _CHANGE)
        texts = {k: v for k, v in c.items() if isinstance(v, str)}
        node = c["node"]
        if (len(texts) != len(_CHANGE) - 1 or not isinstance(node, int)
                or isinstance(node, bool)):
            raise IdentityChangeError("change: every field a string, node an integer")
        change = IdentityChange(
            texts["cluster"], node,
            IdentityPublic.from_hex(node, texts["old_signing_key"], texts["old_kex_key"]),
            IdentityPublic.from_hex(node, texts["new_signing_key"], texts["new_kex_key"]),
            texts["address"], texts["tls_cert"].encode("ascii"), texts["reason"])
        sigs = doc["signatures"]
        if not isinstance(sigs, list):
            raise IdentityChangeError("signatures: a list")
        return change, tuple(_signature(s) for s in sigs)
    except (IdentityKeyError, UnicodeEncodeError) as exc:
        raise IdentityChangeError(f"malformed identity change: {exc}") from None


def applied_path(root: Path, change: IdentityChange) -> Path:
    """Where ``identity-change apply`` keeps a copy of a change it applied to
    ``root``/cluster.toml: what refresh and reshare put in the key's transcript."""
    return root / APPLIED_DIR / f"node{change.node}-{change.digest.hex()[:16]}.json"


def load_applied(root: Path) -> list[tuple[IdentityChange, tuple[AdminSignature, ...]]]:
    """Every change applied to ``root``/cluster.toml (none: an empty list)."""
    folder = root / APPLIED_DIR
    if not folder.is_dir():
        return []
    return [from_json(p.read_bytes()) for p in sorted(folder.glob("node*.json"))]


def changes_between(node: int, old: IdentityPublic, new: IdentityPublic,
                    applied: Sequence[tuple[IdentityChange, tuple[AdminSignature, ...]]]
                    ) -> list[tuple[IdentityChange, tuple[AdminSignature, ...]]]:
    """The applied changes that lead node ``node`` from ``old`` to ``new``, in order (a
    node restored twice has two); raises if they do not."""
    chain: list[tuple[IdentityChange, tuple[AdminSignature, ...]]] = []
    current = old
    while current != new:
        step = next((a for a in applied if a[0].node == node and a[0].old == current), None)
        if step is None or len(chain) >= len(applied):
            raise IdentityChangeError(
                f"no applied identity change leads node {node} from identity "
                f"{current.fingerprint} to {new.fingerprint}")
        chain.append(step)
        current = step[0].new
    return chain


def _signature(value: object) -> AdminSignature:
    d = _obj(value, "signature", _SIGNATURE)
    admin, sig = d["admin_id"], d["signature"]
    if not isinstance(admin, str) or not isinstance(sig, str):
        raise IdentityChangeError("signature: admin_id and hex signature")
    try:
        return AdminSignature(admin, bytes.fromhex(sig))
    except ValueError:
        raise IdentityChangeError(f'signature of "{admin}": not hex') from None


def _obj(value: object, where: str, keys: frozenset[str]) -> Mapping[str, object]:
    if not isinstance(value, dict) or set(value) != keys:
        raise IdentityChangeError(f"{where}: an object with exactly {sorted(keys)}")
    return value
