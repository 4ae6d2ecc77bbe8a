"""Counting admin signatures toward the admin quorum fixed at the ceremony.

Admins sign several kinds of statement (policy bundles, a restored node's identity change),
each under its own domain tag; what counts toward a quorum is the same for all: distinct
known admins whose Ed25519 signature verifies over the statement. Unknown admins, repeats
and signatures over other content do not count, and are described so a refusal can name
them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Protocol, TypeVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


class AdminSigned(Protocol):
    @property
    def admin_id(self) -> str: ...

    @property
    def signature(self) -> bytes: ...


S = TypeVar("S", bound=AdminSigned)


def count_admin_signatures(signatures: Sequence[S], admins: Mapping[str, Ed25519PublicKey],
                           message_of: Callable[[S], bytes], what: str
                           ) -> tuple[dict[str, S], list[str]]:
    """(the signatures that count, by admin; why each other one does not). ``message_of``
    gives the bytes a signature must verify over; ``what`` names the statement."""
    counted: dict[str, S] = {}
    rejected: list[str] = []
    for sig in signatures:
        key = admins.get(sig.admin_id)
        if key is None:
            rejected.append(f'"{sig.admin_id}" is not a known admin')
        elif sig.admin_id in counted:
            rejected.append(f'"{sig.admin_id}" signed more than once (counted once)')
        else:
            try:
                key.verify(sig.signature, message_of(sig))
            except InvalidSignature:
                rejected.append(f'the signature of "{sig.admin_id}" is not over this {what}')
            else:
                counted[sig.admin_id] = sig
    return counted, rejected
