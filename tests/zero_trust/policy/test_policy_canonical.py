"""Known answers: the policy hash and the bundle hash of fixed inputs never change (signer
nodes hold bundles signed over them)."""

from __future__ import annotations

import hashlib

from testing.known_answers import example_policy, fixed_registry
from zero_trust.authorization import RelyingParty, registry_blob
from zero_trust.policy.bundle import BundleSignature, PolicyBundle, bundle_to_json
from zero_trust.policy.policy_canonical import policy_hash

RP = RelyingParty("custody.example", "https://custody.example")


def test_the_policy_hash_of_the_example_policy_is_pinned() -> None:
    assert policy_hash(example_policy()) == \
        "6d87d6241462dca0294f017344e94ae576bb6c5228fae5e2c4c458a8ddd186dc"


def test_the_bundle_hash_and_the_bundle_json_are_pinned() -> None:
    bundle = PolicyBundle(example_policy(), registry_blob(RP, fixed_registry()))
    assert bundle.bundle_hash == \
        "e1ff99f75c649923c1841e51e5f35dde2b1343c27aff314d5d89691a6ab32b1b"
    sent = bundle_to_json(bundle, [BundleSignature("admin-1", bytes(64))])
    assert hashlib.sha256(sent).hexdigest() == \
        "74e008c03e8c758cccad0f16de43429a3910b902973ab14a9a04978d7a7a6382"
