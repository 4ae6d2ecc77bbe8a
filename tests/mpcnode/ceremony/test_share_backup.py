"""The backup envelope: opens with the right recovery keys only, and every byte and label
is bound (a wrong key, a flipped byte, swapped labels or parts are refused)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from mpcnode.ceremony import share_backup as sb
from mpcnode.ceremony.share_backup import (
    BackupFormatError,
    BackupLabelError,
    BackupOpenError,
    BackupPayload,
    ShareBackup,
    StaleBackupError,
)
from mpcnode.crypto.group import Point
from mpcnode.transport.system_random import SystemRandom
from testing.store_material import Material, make_material

CLUSTER = "mpc-cluster"


@pytest.fixture(scope="module")
def material() -> Material:
    return make_material()


@pytest.fixture(scope="module")
def keys() -> list[X25519PrivateKey]:
    return [X25519PrivateKey.generate() for _ in range(3)]


def payload(material: Material, party: int = 2) -> BackupPayload:
    return BackupPayload(material.shares[party], material.aux[party])


def backup(material: Material, keys: list[X25519PrivateKey], quorum: int = 1) -> ShareBackup:
    return sb.encrypt_backup(CLUSTER, payload(material), [k.public_key() for k in keys],
                             quorum, SystemRandom())


def test_the_backup_opens_with_each_recipient_and_restores_the_share(
        material: Material, keys: list[X25519PrivateKey]) -> None:
    b = sb.from_json(sb.to_json(backup(material, keys)))
    for k in keys:
        opened = sb.open_backup(b, [k])
        assert opened.share == material.shares[2]
        assert opened.aux.paillier == material.aux[2].paillier
    assert b.labels.node == 2 and b.labels.epoch == 0
    assert b.labels.public_share == material.shares[2].public.public_shares[2]


def test_no_secret_is_in_the_file_in_clear(material: Material,
                                           keys: list[X25519PrivateKey]) -> None:
    text = sb.to_json(backup(material, keys)).decode()
    assert format(material.shares[2].x, "x") not in text
    assert format(material.aux[2].paillier.p, "x") not in text
    assert "x" not in json.loads(text)["labels"]


def test_a_key_that_is_not_a_recipient_opens_nothing(material: Material,
                                                     keys: list[X25519PrivateKey]) -> None:
    b = backup(material, keys[:2])
    with pytest.raises(BackupOpenError, match="open 0 of the 1 parts"):
        sb.open_backup(b, [keys[2]])


def test_a_quorum_of_two_needs_two_distinct_recovery_keys(
        material: Material, keys: list[X25519PrivateKey]) -> None:
    b = backup(material, keys, quorum=2)
    for k in keys:
        with pytest.raises(BackupOpenError, match="open 1 of the 2 parts"):
            sb.open_backup(b, [k, k])
    for pair in ([keys[0], keys[1]], [keys[2], keys[0]], [keys[1], keys[2]]):
        assert sb.open_backup(b, pair).share == material.shares[2]


def flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 1]) + data[at + 1:]


@pytest.mark.parametrize("where", ["ciphertext", "nonce", "sealed_enc", "sealed_ct"])
def test_a_flipped_byte_is_refused(material: Material, keys: list[X25519PrivateKey],
                                   where: str) -> None:
    b = backup(material, keys[:1])
    part = b.parts[0]
    if where == "ciphertext":
        b = dataclasses.replace(b, ciphertext=flip(b.ciphertext, len(b.ciphertext) // 2))
    elif where == "nonce":
        b = dataclasses.replace(b, nonce=flip(b.nonce, 0))
    else:
        at = 3 if where == "sealed_enc" else len(part.sealed) - 20
        b = dataclasses.replace(b, parts=(dataclasses.replace(part,
                                                              sealed=flip(part.sealed, at)),))
    with pytest.raises(BackupOpenError, match="failed"):
        sb.open_backup(b, keys[:1])


@pytest.mark.parametrize("label", ["epoch", "node", "public_share", "key_id", "cluster"])
def test_a_changed_label_is_refused(material: Material, keys: list[X25519PrivateKey],
                                    label: str) -> None:
    b = backup(material, keys[:1])
    other: dict[str, Any] = {
        "epoch": 1, "node": 1, "public_share": material.shares[1].public.public_shares[1],
        "key_id": bytes(32), "cluster": "other"}
    forged = dataclasses.replace(
        b, labels=dataclasses.replace(b.labels, **{label: other[label]}))
    with pytest.raises(BackupOpenError, match="failed to open"):
        sb.open_backup(forged, keys[:1])


def test_labels_and_parts_swapped_between_two_backups_are_refused(
        material: Material, keys: list[X25519PrivateKey]) -> None:
    b2 = backup(material, keys[:1])
    b1 = sb.encrypt_backup(CLUSTER, payload(material, 1), [keys[0].public_key()], 1,
                           SystemRandom())
    # Node 2's encrypted share under node 1's labels (and the reverse).
    with pytest.raises(BackupOpenError):
        sb.open_backup(dataclasses.replace(b2, labels=b1.labels), keys[:1])
    # Node 2's wrapped data key beside node 1's ciphertext.
    with pytest.raises(BackupOpenError):
        sb.open_backup(dataclasses.replace(b1, parts=b2.parts), keys[:1])


def test_a_payload_that_is_not_the_labelled_share_is_refused(material: Material) -> None:
    wrong = BackupPayload(dataclasses.replace(material.shares[2], x=material.shares[2].x + 1),
                          material.aux[2])
    with pytest.raises(BackupLabelError, match="is not the public share"):
        sb.encrypt_backup(CLUSTER, wrong, [X25519PrivateKey.generate().public_key()], 1,
                          SystemRandom())


def test_labels_are_checked_against_the_key_without_decrypting(
        material: Material, keys: list[X25519PrivateKey]) -> None:
    b = backup(material, keys[:1])
    public = material.shares[1].public
    sb.check_labels(b.labels, public, CLUSTER)
    with pytest.raises(StaleBackupError, match="epoch 0; the key's shares are now at epoch 3"):
        sb.check_labels(b.labels, dataclasses.replace(public, epoch=3), CLUSTER)
    moved = dict(public.public_shares)
    moved[2] = Point.generator() * 5
    with pytest.raises(BackupLabelError, match="not node 2's public share"):
        sb.check_labels(b.labels, dataclasses.replace(public, public_shares=moved), CLUSTER)
    with pytest.raises(BackupLabelError, match="cluster"):
        sb.check_labels(b.labels, public, "other")


@pytest.mark.parametrize("edit", [
    lambda d: d.update(format="mpc-share-backup/0"),
    lambda d: d.update(quorum=3),
    lambda d: d["labels"].update(extra=1),
    lambda d: d["parts"][0].update(index=2),
    lambda d: d.update(nonce="00"),
    lambda d: d["labels"].update(public_share="02" + "00" * 32),
])
def test_a_malformed_file_is_refused(material: Material, keys: list[X25519PrivateKey],
                                     edit: object) -> None:
    doc = json.loads(sb.to_json(backup(material, keys[:2])))
    assert callable(edit)
    edit(doc)
    with pytest.raises(BackupFormatError):
        sb.from_json(json.dumps(doc).encode())
