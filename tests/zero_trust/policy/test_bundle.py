"""Signed policy bundle: admin quorum, distinct known admins, exact bundle hash, version
upgrade only, strict JSON form."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from testing.policy_samples import ALLOW_ALL, HEADER, policy_with
from zero_trust.policy.bundle import (
    BundleSignature,
    PolicyBundle,
    bundle_from_json,
    bundle_to_json,
    check_signing_times,
    check_upgrade,
    sign_bundle,
    signed_message,
    signing_time,
    verify_bundle,
)
from zero_trust.policy.policy_errors import (
    BundleError,
    BundleFormatError,
    BundleSignatureError,
    BundleVersionError,
)

REGISTRY = b'{"approvers":[{"roles":["approver"],"user_id":"bea"}],"format":1}'
ADMINS = {name: Ed25519PrivateKey.from_private_bytes(bytes([i + 1]) * 32)
          for i, name in enumerate(("ann", "ben", "cat"))}
PUBLIC = {name: key.public_key() for name, key in ADMINS.items()}
SIGNED_AT = 1_700_000_000


def _bundle(version: int = 3, registry: bytes = REGISTRY) -> PolicyBundle:
    header = HEADER.replace("version = 3", f"version = {version}")
    return PolicyBundle(policy_with(ALLOW_ALL, header), registry)


def _signed(bundle: PolicyBundle, *admins: str) -> list[BundleSignature]:
    return [sign_bundle(bundle, ADMINS[a], a, signed_at=SIGNED_AT) for a in admins]


# --------------------------------------------------------------------------- quorum


def test_quorum_met() -> None:
    bundle = _bundle()
    verify_bundle(bundle, _signed(bundle, "ann", "cat"), PUBLIC, quorum=2)
    verify_bundle(bundle, _signed(bundle, "ann", "ben", "cat"), PUBLIC, quorum=3)


def test_quorum_not_met() -> None:
    bundle = _bundle()
    with pytest.raises(BundleSignatureError, match=r'has 1 of the 2 admin signatures required '
                                                   r'\(valid: "ben"\)$'):
        verify_bundle(bundle, _signed(bundle, "ben"), PUBLIC, quorum=2)
    with pytest.raises(BundleSignatureError, match=r"has 0 of the 1 .* \(valid: none\)"):
        verify_bundle(bundle, [], PUBLIC, quorum=1)


def test_duplicate_admin_signature_counts_once() -> None:
    bundle = _bundle()
    twice = _signed(bundle, "ann", "ann")
    assert twice[0] == twice[1]  # Ed25519 is deterministic: the very same signature
    with pytest.raises(BundleSignatureError, match='"ann" signed more than once'):
        verify_bundle(bundle, twice, PUBLIC, quorum=2)


def test_unknown_admin_does_not_count() -> None:
    bundle = _bundle()
    intruder = Ed25519PrivateKey.from_private_bytes(b"\x09" * 32)
    signatures = [*_signed(bundle, "ann"),
                  sign_bundle(bundle, intruder, "mallory", signed_at=SIGNED_AT)]
    with pytest.raises(BundleSignatureError, match='"mallory" is not a known admin'):
        verify_bundle(bundle, signatures, PUBLIC, quorum=2)


def test_signature_under_a_wrong_admin_name_does_not_count() -> None:
    bundle = _bundle()
    forged = [*_signed(bundle, "ann"),
              sign_bundle(bundle, ADMINS["ann"], "ben", signed_at=SIGNED_AT)]
    with pytest.raises(BundleSignatureError, match='the signature of "ben" is not over'):
        verify_bundle(bundle, forged, PUBLIC, quorum=2)


@pytest.mark.parametrize("other", [_bundle(version=4), _bundle(registry=b'{"approvers":[]}')])
def test_signature_over_another_bundle_does_not_count(other: PolicyBundle) -> None:
    bundle = _bundle()
    assert other.bundle_hash != bundle.bundle_hash
    signatures = _signed(bundle, "ann") + _signed(other, "ben")
    with pytest.raises(BundleSignatureError, match='the signature of "ben" is not over'):
        verify_bundle(bundle, signatures, PUBLIC, quorum=2)
    verify_bundle(other, _signed(other, "ann", "ben"), PUBLIC, quorum=2)


def test_quorum_must_be_reachable() -> None:
    bundle = _bundle()
    for quorum in (0, 4):
        with pytest.raises(BundleError, match="admin quorum must be 1 to 3"):
            verify_bundle(bundle, _signed(bundle, "ann", "ben", "cat"), PUBLIC, quorum=quorum)


# --------------------------------------------------------------------------- signing time


def _signed_at(bundle: PolicyBundle, **times: int) -> list[BundleSignature]:
    return [sign_bundle(bundle, ADMINS[a], a, signed_at=t) for a, t in times.items()]


def test_a_v1_signature_without_a_time_still_counts() -> None:
    bundle = _bundle()
    v1 = BundleSignature("ann", ADMINS["ann"].sign(signed_message(bundle.bundle_hash, None)))
    counted = verify_bundle(bundle, [v1, *_signed(bundle, "ben")], PUBLIC, quorum=2)
    assert signing_time(counted) is None  # one signature has no time: the node's own clock
    assert bundle_from_json(bundle_to_json(bundle, [v1]))[1] == (v1,)
    assert b"signed_at" not in bundle_to_json(bundle, [v1])


def test_the_time_is_inside_the_signature() -> None:
    bundle = _bundle()
    [sig] = _signed_at(bundle, ann=SIGNED_AT)
    for moved in (SIGNED_AT - 3600, SIGNED_AT + 1):
        with pytest.raises(BundleSignatureError, match='"ann" is not over this bundle'):
            verify_bundle(bundle, [replace(sig, signed_at=moved)], PUBLIC, quorum=1)
    with pytest.raises(BundleSignatureError, match='"ann" is not over this bundle'):
        verify_bundle(bundle, [replace(sig, signed_at=None)], PUBLIC, quorum=1)  # as v1


def test_the_signing_time_is_the_latest_of_the_counted_signatures() -> None:
    """The quorum (2) was reached at T + 10; a third admin signed at T + 50. With all three
    the cool-down starts at T + 50; a relay that drops signatures gets T + 10 at best, never
    the first admin's T."""
    bundle = _bundle()
    sigs = _signed_at(bundle, ann=SIGNED_AT, ben=SIGNED_AT + 10, cat=SIGNED_AT + 50)
    assert signing_time(verify_bundle(bundle, sigs, PUBLIC, quorum=2)) == SIGNED_AT + 50
    assert signing_time(verify_bundle(bundle, sigs[:2], PUBLIC, quorum=2)) == SIGNED_AT + 10
    with pytest.raises(BundleSignatureError):
        verify_bundle(bundle, sigs[:1], PUBLIC, quorum=2)
    unknown = sign_bundle(bundle, Ed25519PrivateKey.generate(), "mallory", signed_at=1)
    counted = verify_bundle(bundle, [*sigs[:2], unknown], PUBLIC, quorum=2)
    assert signing_time(counted) == SIGNED_AT + 10  # an uncounted signature moves nothing


def test_a_signature_dated_in_the_future_is_refused() -> None:
    sigs = _signed_at(_bundle(), ann=SIGNED_AT + 31)
    check_signing_times(_signed_at(_bundle(), ann=SIGNED_AT + 30), SIGNED_AT, 30)
    with pytest.raises(BundleSignatureError, match='"ann" is dated 1700000031, 31 s in the '
                                                   r"future \(allowed clock skew 30 s\)"):
        check_signing_times(sigs, SIGNED_AT, 30)


@pytest.mark.parametrize("value", [None, 0, -1, True, "1700000000", 1.5, 2**63])
def test_a_malformed_signing_time_is_refused(value: object) -> None:
    bundle = _bundle()
    doc = json.loads(bundle_to_json(bundle, _signed(bundle, "ann")))
    doc["signatures"][0]["signed_at"] = value
    with pytest.raises(BundleFormatError,
                       match=r"signed_at must be a positive integer|non-integer number 1\.5"):
        bundle_from_json(json.dumps(doc).encode())


# --------------------------------------------------------------------------- version


def test_version_must_increase() -> None:
    check_upgrade(None, _bundle(3))
    check_upgrade(2, _bundle(3))
    with pytest.raises(BundleVersionError, match="version 3 is not newer than the installed "
                                                 "version 3"):
        check_upgrade(3, _bundle(3))
    with pytest.raises(BundleVersionError, match="downgrade"):
        check_upgrade(5, _bundle(3))


# --------------------------------------------------------------------------- hash


def test_bundle_hash_binds_policy_and_registry() -> None:
    base = _bundle()
    assert base.bundle_hash == _bundle().bundle_hash and len(base.bundle_hash) == 64
    assert base.policy_hash != base.bundle_hash
    assert base.bundle_hash != _bundle(registry=REGISTRY + b" ").bundle_hash
    stricter = replace(base, policy=replace(base.policy, cooldown_seconds=1))
    assert stricter.bundle_hash != base.bundle_hash


def test_registry_must_be_json_bytes() -> None:
    with pytest.raises(BundleFormatError, match="approver_registry is not JSON"):
        PolicyBundle(_bundle().policy, b"{not json")
    with pytest.raises(BundleFormatError, match="must be bytes"):
        PolicyBundle(_bundle().policy, REGISTRY.decode())  # type: ignore[arg-type]


# --------------------------------------------------------------------------- JSON form


def test_json_round_trip_verifies() -> None:
    bundle = _bundle()
    data = bundle_to_json(bundle, _signed(bundle, "ann", "ben"))
    again, signatures = bundle_from_json(data)
    assert again == bundle and again.bundle_hash == bundle.bundle_hash
    assert [s.admin_id for s in signatures] == ["ann", "ben"]
    verify_bundle(again, signatures, PUBLIC, quorum=2)
    assert bundle_to_json(again, signatures) == data


def _tamper(edit: object) -> bytes:
    bundle = _bundle()
    value = json.loads(bundle_to_json(bundle, _signed(bundle, "ann")))
    edit(value)  # type: ignore[operator]
    return json.dumps(value).encode()


@pytest.mark.parametrize(("edit", "expected"), [
    (lambda v: v.update(extra=1), r"bundle: unknown field\(s\) \['extra'\]"),
    (lambda v: v.pop("signatures"), r"missing field\(s\) \['signatures'\]"),
    (lambda v: v["signatures"][0].update(note="hi"), r"signatures\[0\]: unknown field"),
    (lambda v: v["policy"].update(owner="x"), 'unknown field "owner"'),
    (lambda v: v["policy"]["rules"][0].update(action="allow_all"), "'allow_all' is not one"),
    (lambda v: v.update(format="oms-policy-bundle/0"), "format must be"),
    (lambda v: v["policy"].update(cooldown_seconds=0), "does not match the contents"),
    (lambda v: v.update(approver_registry="!!"), "not base64"),
    (lambda v: v["signatures"][0].update(signature="zz"), "signature is not hex"),
    (lambda v: v["signatures"][0].update(signature="00"), "must be 64 bytes"),
])
def test_strict_parsing_rejects(edit: object, expected: str) -> None:
    with pytest.raises(BundleFormatError, match=expected):
        bundle_from_json(_tamper(edit))


def test_duplicate_keys_floats_and_garbage_are_rejected() -> None:
    data = bundle_to_json(_bundle(), [])
    with pytest.raises(BundleFormatError, match="duplicate JSON key 'format'"):
        bundle_from_json(b'{"format":"x",' + data[1:])
    with pytest.raises(BundleFormatError, match="non-integer number"):
        bundle_from_json(data.replace(b'"cooldown_seconds":86400', b'"cooldown_seconds":1.5'))
    with pytest.raises(BundleFormatError, match="not UTF-8 JSON"):
        bundle_from_json(b"\xff")


def test_tampered_policy_with_recomputed_hash_fails_the_signatures() -> None:
    bundle = _bundle()
    signatures = _signed(bundle, "ann", "ben")
    looser = replace(bundle, policy=replace(bundle.policy, cooldown_seconds=0))
    again, sigs = bundle_from_json(bundle_to_json(looser, signatures))  # parses fine …
    with pytest.raises(BundleSignatureError, match="has 0 of the 2"):
        verify_bundle(again, sigs, PUBLIC, quorum=2)  # … but no admin signed it
