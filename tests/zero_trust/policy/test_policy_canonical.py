"""Known answers: the policy hash and the bundle hash of fixed inputs never change (signer
nodes hold bundles signed over them)."""

from __future__ import annotations

import hashlib

from testing.known_answers import example_policy, fixed_registry, format1_policy
from zero_trust.authorization import RelyingParty, registry_blob
from zero_trust.policy.bundle import BundleSignature, PolicyBundle, bundle_to_json
from zero_trust.policy.policy_canonical import policy_hash

RP = RelyingParty("custody.example", "https://custody.example")


def test_the_policy_hash_of_the_format_1_example_policy_is_pinned() -> None:
    assert policy_hash(format1_policy()) == \
        "06c7feca544d64d42fbafae4343b3940b76efb598eb4d7cfce994be70fa088dd"


def test_the_policy_hash_of_the_format_2_example_policy_is_pinned() -> None:
    assert policy_hash(example_policy()) == \
        "0616427a439a42a9a32a29cb339a9985ce553d32b8c2c473f360882a5ed7230c"


def test_the_bundle_hash_and_the_bundle_json_are_pinned() -> None:
    bundle = PolicyBundle(format1_policy(), registry_blob(RP, fixed_registry()))
    assert bundle.bundle_hash == \
        "c20810e1999968f1285ee6808a4dce86b60eb5a0cde69adb72069c7346b6aedc"
    sent = bundle_to_json(bundle, [BundleSignature("admin-1", bytes(64))])
    assert hashlib.sha256(sent).hexdigest() == \
        "ff0bf4cd743b3d9f8b0add517bd776cbac191fa0eff7594e59ae013f74af8fba"
