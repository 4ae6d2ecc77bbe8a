"""Security parameters, named as one profile (DESIGN §2), and the paper revision.

ℓ, ℓ', ε follow taurusgroup/multi-party-sig and cggmp24; the range-proof challenge is
drawn from ±q. Π^mod and Π^prm repeat ``m`` times with soundness error 2^-m each.

Every "CGGMP21 Fig. N" or "§N" in this code base and in docs/ refers to ``PAPER_REVISION``.
Three proofs used here are not in that revision (it presigns with El-Gamal commitments):
Π^enc, Π^log* and Π^mul* are cited as "pre-2024 revisions, Fig. 14 / 25 / 31", the
numbering of the revisions before it (docs/protocol.md, "Deviations from the paper").
"""

from __future__ import annotations

from dataclasses import dataclass

from mpcnode.core.curve import Q

PAPER = ("Canetti, Gennaro, Goldfeder, Makriyannis, Peled: UC Non-Interactive, Proactive, "
         "Threshold ECDSA with Identifiable Aborts, IACR ePrint 2021/060")
PAPER_REVISION = "2024-10-21"
"""The pinned revision of ``PAPER``: the latest on ePrint (https://eprint.iacr.org/2021/060)."""


@dataclass(frozen=True)
class Profile:
    name: str
    ell: int  # ℓ: bit bound of secret scalars (k, γ, x) in range proofs
    ell_prime: int  # ℓ': bit bound of the MtA masks β
    eps: int  # ε: slack of range proofs
    paillier_bits: int  # |N|; each prime is half of it
    m_mod: int  # repetitions of Π^mod
    m_prm: int  # repetitions of Π^prm
    q: int = Q

    @property
    def prime_bits(self) -> int:
        return self.paillier_bits // 2


PROFILE_2048 = Profile("cggmp21-2048", ell=256, ell_prime=1280, eps=512, paillier_bits=2048,
                       m_mod=128, m_prm=128)
PROFILE_3072 = Profile("cggmp21-3072", ell=256, ell_prime=1280, eps=512, paillier_bits=3072,
                       m_mod=128, m_prm=128)
DEFAULT_PROFILE = PROFILE_2048

PROFILES = {p.name: p for p in (PROFILE_2048, PROFILE_3072)}
