"""A node's key share encrypted to the organisation's offline recovery keys (DESIGN §5).

A share leaves a node only in this envelope, never in clear. Construction (docs/backup.md):

- the payload (the node's ``KeyShare`` and ``AuxInfo``, codec bytes) is encrypted once with
  AES-256-GCM under a random data key ``K`` (a scalar in [1, q), 32 bytes big-endian),
  with the backup's *header* as associated data;
- ``K`` is split by Shamir over Z_q (q the secp256k1 order, the project's one polynomial
  and Lagrange code) into one part per recipient, of degree ``quorum − 1``: any ``quorum``
  recovery keys together open the backup, fewer learn nothing of ``K``;
- each part is encrypted to its recipient with HPKE (RFC 9180) in base mode, suite
  DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM, ``info`` = a domain tag, the
  header's SHA-256 and the part's index.

The header names the format, suite, cluster, key id, node, epoch, threshold, parties, the
public key and the public share X_i the backup restores, the quorum and every recipient's
public key with its index. It is in clear, so ``check_labels`` compares it with the
cluster's public key data without decrypting; it is bound twice (each part's HPKE ``info``
and the payload's associated data), so a changed label, a swapped part or a flipped byte
fails to open. What opens is then checked against the labels: x_i·G = X_i.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from mpcnode.core.canonical_json import CanonicalJSONError, canonical_json, parse_json
from mpcnode.core.errors import MpcnodeError
from mpcnode.crypto import codec
from mpcnode.crypto.group import Point, Q, lagrange_coefficient, poly_eval
from mpcnode.crypto.random_source import RandomSource, rand_scalar
from mpcnode.protocol.key_share import (
    AuxInfo,
    KeyMaterialError,
    KeyShare,
    PublicKeyData,
    check_aux_info,
    check_key_share,
)

FORMAT = "mpc-share-backup/1"
SUITE = "HPKE-base DHKEM(X25519,HKDF-SHA256) HKDF-SHA256 AES-256-GCM"
MAX_RECIPIENTS = 16
MAX_BACKUP_BYTES = 4 * 1024 * 1024  # a 3072-bit aux info is ~30 kB; refuse anything absurd
_INFO_TAG = b"mpc-share-backup/1 data-key part\x00"
_NONCE_BYTES = 12
_KEY_BYTES = 32
_X25519_BYTES = 32
_SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
_TOP = frozenset({"format", "suite", "labels", "quorum", "parts", "nonce", "ciphertext"})
_LABELS = frozenset({"cluster", "key_id", "node", "epoch", "threshold", "parties",
                     "public_key", "public_share"})
_PART = frozenset({"index", "recipient", "sealed"})


class BackupError(MpcnodeError):
    """Root of the backup errors; messages name the file's labels, never a secret."""


class BackupFormatError(BackupError, ValueError):
    """The bytes are not a well-formed backup of this format."""


class BackupOpenError(BackupError):
    """The backup did not open: too few or wrong recovery keys, or altered bytes."""


class BackupLabelError(BackupError):
    """The backup's labels do not match the key it claims to restore."""


class StaleBackupError(BackupLabelError):
    """The backup is of another epoch than the key's current shares (before a refresh)."""


@dataclass(frozen=True)
class BackupLabels:
    """What a backup restores, in clear and authenticated."""

    cluster: str
    key_id: bytes
    node: int  # the party whose share this is
    epoch: int  # refreshes of the key before this share
    threshold: int
    parties: tuple[int, ...]
    public_key: Point  # X
    public_share: Point  # X_i = x_i·G

    @classmethod
    def of(cls, cluster: str, share: KeyShare) -> BackupLabels:
        p = share.public
        return cls(cluster, p.key_id, share.party, p.epoch, p.threshold, p.parties,
                   p.public_key, p.public_shares[share.party])

    def to_json(self) -> dict[str, object]:
        return {"cluster": self.cluster, "key_id": self.key_id.hex(), "node": self.node,
                "epoch": self.epoch, "threshold": self.threshold,
                "parties": list(self.parties), "public_key": self.public_key.to_bytes().hex(),
                "public_share": self.public_share.to_bytes().hex()}


@dataclass(frozen=True)
class BackupPayload:
    """The secret inside: everything the node needs to sign with this key again."""

    share: KeyShare = field(repr=False)
    aux: AuxInfo = field(repr=False)


@dataclass(frozen=True)
class WrappedPart:
    """Shamir part ``index`` of the data key, HPKE-encrypted to ``recipient``."""

    index: int  # evaluation point, 1..m
    recipient: bytes  # raw X25519 public key
    sealed: bytes  # HPKE enc ‖ ciphertext


@dataclass(frozen=True)
class ShareBackup:
    labels: BackupLabels
    quorum: int  # recovery keys needed to open
    parts: tuple[WrappedPart, ...]
    nonce: bytes
    ciphertext: bytes  # AES-256-GCM(K, payload, aad = header)

    @property
    def header(self) -> bytes:
        """The associated data: every clear field but the ciphertexts."""
        return canonical_json({
            "format": FORMAT, "suite": SUITE, "labels": self.labels.to_json(),
            "quorum": self.quorum,
            "recipients": [{"index": p.index, "recipient": p.recipient.hex()}
                           for p in self.parts]})

    def recipients(self) -> list[bytes]:
        return [p.recipient for p in self.parts]


def raw_public(key: X25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def _info(header: bytes, index: int) -> bytes:
    return _INFO_TAG + hashlib.sha256(header).digest() + index.to_bytes(2, "big")


def encrypt_backup(cluster: str, payload: BackupPayload, recipients: Sequence[X25519PublicKey],
                   quorum: int, rng: RandomSource) -> ShareBackup:
    """Encrypt ``payload`` so that any ``quorum`` of ``recipients`` can open it."""
    _check_payload(payload)
    raw = [raw_public(r) for r in recipients]
    if not 1 <= len(raw) <= MAX_RECIPIENTS:
        raise BackupError(f"a backup needs 1 to {MAX_RECIPIENTS} recovery keys, got {len(raw)}")
    if len(set(raw)) != len(raw):
        raise BackupError("the same recovery key is named twice")
    if not 1 <= quorum <= len(raw):
        raise BackupError(f"the recovery quorum must be 1 to {len(raw)}, got {quorum}")
    labels = BackupLabels.of(cluster, payload.share)
    data_key = rand_scalar(rng, Q)
    coeffs = [data_key] + [rand_scalar(rng, Q) for _ in range(quorum - 1)]
    nonce = rng.token_bytes(_NONCE_BYTES)
    skeleton = ShareBackup(labels, quorum, tuple(WrappedPart(j, r, b"")
                                                 for j, r in enumerate(raw, 1)), nonce, b"")
    header = skeleton.header
    parts = tuple(
        WrappedPart(j, r, _SUITE.encrypt(poly_eval(coeffs, j).to_bytes(_KEY_BYTES, "big"),
                                         X25519PublicKey.from_public_bytes(r), _info(header, j)))
        for j, r in enumerate(raw, 1))
    body = AESGCM(data_key.to_bytes(_KEY_BYTES, "big")).encrypt(
        nonce, codec.to_bytes(payload), header)
    return ShareBackup(labels, quorum, parts, nonce, body)


def open_backup(backup: ShareBackup, keys: Sequence[X25519PrivateKey]) -> BackupPayload:
    """Decrypt with ``quorum`` of the recipients' private keys; the payload matches the
    labels (party, key, epoch, x_i·G = X_i) or BackupLabelError is raised."""
    header = backup.header
    points: dict[int, int] = {}
    for key in keys:
        mine = raw_public(key.public_key())
        for part in backup.parts:
            if part.recipient == mine and part.index not in points:
                points[part.index] = _unwrap(part, key, header)
    if len(points) < backup.quorum:
        raise BackupOpenError(
            f"the recovery keys given open {len(points)} of the {backup.quorum} parts this "
            f"backup needs (its recipients: {_fingerprints(backup.recipients())})")
    chosen = sorted(points)[:backup.quorum]
    data_key = sum(points[j] * lagrange_coefficient(j, chosen) for j in chosen) % Q
    try:
        plain = AESGCM(data_key.to_bytes(_KEY_BYTES, "big")).decrypt(
            backup.nonce, backup.ciphertext, header)
    except InvalidTag:
        raise BackupOpenError("the backup's payload failed authentication: altered bytes or "
                              "labels, or a part that is not its own") from None
    try:
        payload = codec.from_bytes(BackupPayload, plain)
    except (codec.DecodeError, CanonicalJSONError) as exc:
        raise BackupFormatError(f"the backup's payload does not decode: {exc}") from None
    _check_payload(payload)
    if BackupLabels.of(backup.labels.cluster, payload.share) != backup.labels:
        raise BackupLabelError("the decrypted share is not the one the labels name")
    return payload


def _unwrap(part: WrappedPart, key: X25519PrivateKey, header: bytes) -> int:
    try:
        raw = _SUITE.decrypt(part.sealed, key, _info(header, part.index))
    except (InvalidTag, ValueError):
        raise BackupOpenError(f"part {part.index} of the data key failed to open: altered "
                              "bytes or labels, or not sealed to this recovery key") from None
    value = int.from_bytes(raw, "big")
    if len(raw) != _KEY_BYTES or value >= Q:
        raise BackupOpenError(f"part {part.index} of the data key is malformed")
    return value


def _check_payload(payload: BackupPayload) -> None:
    share, aux = payload.share, payload.aux
    public = share.public
    if share.party not in public.public_shares or aux.party != share.party:
        raise BackupLabelError(f"the key share (party {share.party}) and aux info "
                               f"(party {aux.party}) are not of one party of the key")
    if Point.generator() * share.x != public.public_shares[share.party]:
        raise BackupLabelError(f"x_{share.party}·G is not the public share X_{share.party}")


def check_labels(labels: BackupLabels, current: PublicKeyData, cluster: str) -> None:
    """Does the backup restore the *current* share of node ``labels.node`` of this key?
    Checked against public data only (a verified transcript): nothing is decrypted."""
    if labels.cluster != cluster:
        raise BackupLabelError(f"the backup is of cluster {labels.cluster!r}, not {cluster!r}")
    if labels.key_id != current.key_id:
        raise BackupLabelError(f"the backup is of key {labels.key_id.hex()}, not "
                               f"{current.key_id.hex()}")
    if labels.epoch != current.epoch:
        raise StaleBackupError(
            f"the backup of node {labels.node} holds the share of epoch {labels.epoch}; the "
            f"key's shares are now at epoch {current.epoch}: refusing a share that no longer "
            "combines with the others")
    if (labels.threshold, labels.parties) != (current.threshold, current.parties):
        raise BackupLabelError(f"the backup names a {labels.threshold}-of-{len(labels.parties)} "
                               f"key over {list(labels.parties)}, the key is "
                               f"{current.threshold}-of-{len(current.parties)}")
    if labels.public_key != current.public_key:
        raise BackupLabelError("the backup names another public key")
    if current.public_shares.get(labels.node) != labels.public_share:
        raise BackupLabelError(f"the backup's public share is not node {labels.node}'s "
                               f"public share X_{labels.node} of the key")


def check_restorable(payload: BackupPayload, current: PublicKeyData,
                     aux_digest: bytes | None) -> None:
    """After opening: is every public value the payload brings the key's verified one?
    The labels bind only the node's own public share; whoever holds x_i and the recovery
    keys can seal a payload whose other parties' public shares or Paillier and
    ring-Pedersen parameters are their own choice, and the restored node would trust
    them. ``aux_digest`` is ``AuxInfo.digest`` of the transcript's aux-info session."""
    share, aux = payload.share, payload.aux
    if share.public != current:
        raise BackupLabelError(f"the backup's public key data for node {share.party} "
                               "(public shares, chain code) is not the key's verified data")
    if aux.digest != aux_digest:
        raise BackupLabelError(f"the backup's aux info for node {share.party} (the parties' "
                               "Paillier and ring-Pedersen parameters) is not the one the "
                               "key's aux-info session made")
    try:
        check_key_share(share, share.party)
        check_aux_info(aux, current, share.party)
    except KeyMaterialError as exc:
        raise BackupLabelError(f"the backup's key material does not check: {exc}") from None


def _fingerprints(keys: Sequence[bytes]) -> str:
    return ", ".join(k.hex()[:16] for k in keys)


# --------------------------------------------------------------------------- file form


def to_json(backup: ShareBackup) -> bytes:
    return canonical_json({
        "format": FORMAT, "suite": SUITE, "labels": backup.labels.to_json(),
        "quorum": backup.quorum,
        "parts": [{"index": p.index, "recipient": p.recipient.hex(), "sealed": p.sealed.hex()}
                  for p in backup.parts],
        "nonce": backup.nonce.hex(), "ciphertext": backup.ciphertext.hex()}) + b"\n"


def from_json(data: bytes) -> ShareBackup:
    """Parse a backup file strictly: exact keys, types and sizes."""
    if len(data) > MAX_BACKUP_BYTES:
        raise BackupFormatError(f"a backup file has at most {MAX_BACKUP_BYTES} bytes")
    try:
        doc = _obj(parse_json(data, floats=False), "backup", _TOP)
    except CanonicalJSONError as exc:
        raise BackupFormatError(f"not JSON: {exc}") from None
    if (doc["format"], doc["suite"]) != (FORMAT, SUITE):
        raise BackupFormatError(f"unknown format {doc['format']!r} / suite {doc['suite']!r}")
    parts = doc["parts"]
    if not isinstance(parts, list) or not 1 <= len(parts) <= MAX_RECIPIENTS:
        raise BackupFormatError(f"parts: 1 to {MAX_RECIPIENTS} entries")
    backup = ShareBackup(_labels(doc["labels"]), _int(doc["quorum"], "quorum"),
                         tuple(_part(p, k) for k, p in enumerate(parts)),
                         _hex(doc["nonce"], "nonce", _NONCE_BYTES),
                         _hex(doc["ciphertext"], "ciphertext"))
    if [p.index for p in backup.parts] != list(range(1, len(parts) + 1)):
        raise BackupFormatError("parts must be indexed 1..m in order")
    if len(set(backup.recipients())) != len(parts) or not 1 <= backup.quorum <= len(parts):
        raise BackupFormatError("recipients repeat, or the quorum is not 1..m")
    return backup


def _labels(value: object) -> BackupLabels:
    d = _obj(value, "labels", _LABELS)
    parties = d["parties"]
    if not isinstance(parties, list) or not parties:
        raise BackupFormatError("labels.parties must be a list of party ids")
    if not isinstance(d["cluster"], str):
        raise BackupFormatError("labels.cluster must be a string")
    return BackupLabels(d["cluster"], _hex(d["key_id"], "labels.key_id", 32),
                        _int(d["node"], "labels.node"), _int(d["epoch"], "labels.epoch", 0),
                        _int(d["threshold"], "labels.threshold"),
                        tuple(_int(p, "labels.parties") for p in parties),
                        _point(d["public_key"], "labels.public_key"),
                        _point(d["public_share"], "labels.public_share"))


def _part(value: object, k: int) -> WrappedPart:
    d = _obj(value, f"parts.{k}", _PART)
    return WrappedPart(_int(d["index"], f"parts.{k}.index"),
                       _hex(d["recipient"], f"parts.{k}.recipient", _X25519_BYTES),
                       _hex(d["sealed"], f"parts.{k}.sealed"))


def _obj(value: object, where: str, keys: frozenset[str]) -> Mapping[str, object]:
    if not isinstance(value, dict) or set(value) != keys:
        raise BackupFormatError(f"{where}: an object with exactly {sorted(keys)}")
    return value


def _int(value: object, where: str, low: int = 1) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value < 2**31:
        raise BackupFormatError(f"{where}: an integer from {low}")
    return value


def _hex(value: object, where: str, size: int | None = None) -> bytes:
    try:
        raw = bytes.fromhex(value) if isinstance(value, str) else None
    except ValueError:
        raw = None
    if raw is None or raw.hex() != value or (size is not None and len(raw) != size):
        raise BackupFormatError(f"{where}: lower-case hex" + (f" of {size} bytes" if size else ""))
    return raw


def _point(value: object, where: str) -> Point:
    try:
        return Point.from_bytes(_hex(value, where, 33))
    except ValueError:
        raise BackupFormatError(f"{where}: not a point of secp256k1") from None
