"""What counts toward an admin quorum: distinct known admins, over the statement itself."""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from zero_trust.admin_signatures import count_admin_signatures


@dataclass(frozen=True)
class Sig:
    admin_id: str
    signature: bytes


def test_only_distinct_known_admins_over_the_statement_count() -> None:
    ann, bob, eve = (Ed25519PrivateKey.generate() for _ in range(3))
    admins = {"ann": ann.public_key(), "bob": bob.public_key()}
    message = b"tag\x00statement"
    sigs = [Sig("ann", ann.sign(message)), Sig("ann", ann.sign(message)),
            Sig("bob", bob.sign(b"tag\x00another statement")), Sig("eve", eve.sign(message))]
    counted, rejected = count_admin_signatures(sigs, admins, lambda _: message, "statement")
    assert list(counted) == ["ann"]
    assert rejected == ['"ann" signed more than once (counted once)',
                        'the signature of "bob" is not over this statement',
                        '"eve" is not a known admin']
