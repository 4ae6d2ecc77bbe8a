"""BIP32 non-hardened (public) derivation of child keys of the threshold key.

Only public derivation is possible for a key nobody holds: child = X + I_L·G with
I_L from HMAC-SHA512(chain code, ser_P(X) ‖ ser_32(i)). The summed tweak e_P = Σ I_L
enters at signing, not at presigning: each signer adds e_P·k_i to its χ_i
(``sign.sign_share``, docs/rerandomization.md), so one presignature serves every path.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from mpcnode.core.errors import UsageError
from mpcnode.crypto.group import Point, Q

HARDENED = 1 << 31


@dataclass(frozen=True)
class DerivedKey:
    public_key: Point
    chain_code: bytes
    tweak: int  # Σ I_L mod q: child private key = parent private key + tweak


def parse_path(path: str) -> tuple[int, ...]:
    """'m/0/1/5' → (0, 1, 5); hardened steps ('1'' or 1h) are refused."""
    parts = path.strip().split("/")
    if parts[0] != "m":
        raise UsageError("a derivation path starts with 'm'")
    out = []
    for p in parts[1:]:
        if p.endswith(("'", "h", "H")):
            raise UsageError("hardened derivation needs the private key; use non-hardened paths")
        if not p.isdigit() or int(p) >= HARDENED:
            raise UsageError(f"bad path element {p!r}")
        out.append(int(p))
    return tuple(out)


def format_path(path: tuple[int, ...]) -> str:
    return "/".join(["m", *map(str, path)])


def derive(public_key: Point, chain_code: bytes, path: tuple[int, ...]) -> DerivedKey:
    """CKDpub along ``path`` (BIP32 §"Public parent key → public child key")."""
    key, code, tweak = public_key, chain_code, 0
    for index in path:
        if not 0 <= index < HARDENED:
            raise UsageError("only non-hardened indexes can be derived publicly")
        digest = hmac.new(code, key.to_bytes() + index.to_bytes(4, "big"), hashlib.sha512).digest()
        il = int.from_bytes(digest[:32], "big")
        if il >= Q:
            raise UsageError(f"index {index} gives an invalid child (I_L >= n); use the next")
        child = key + Point.base_mul(il)
        if child.is_identity():
            raise UsageError(f"index {index} gives the point at infinity; use the next")
        key, code, tweak = child, digest[32:], (tweak + il) % Q
    return DerivedKey(key, code, tweak)
