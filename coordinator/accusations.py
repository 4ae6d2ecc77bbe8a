"""Which culprit the coordinator reports when signer nodes name different ones.

After an identifiable abort every honest node names the same party; a cheating node may
name nobody, or blame someone else. The coordinator reports the party named by the most
nodes. A node naming itself, or nobody (``None``), casts no vote. A tie cannot be
resolved from the votes alone: the lowest id is reported, and the report says it was a
tie (with t = 2 one honest node stands against one cheater).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import grpc

from mpcnode.core.errors import culprit_name


@dataclass(frozen=True)
class Verdict:
    culprit: int | None  # None: nobody was named
    votes: dict[int, list[int]]  # accused → the nodes that named it, most votes first
    tie: bool  # several parties got the most votes; ``culprit`` is the lowest of them

    def summary(self) -> str:
        text = f"accusations: {self.votes}"
        if self.tie:
            text += f" (a tie: reporting the lowest id, {culprit_name(self.culprit)})"
        return text

    @property
    def unanimous(self) -> bool:
        return len(self.votes) <= 1


def majority(accusations: Mapping[int, Iterable[int | None]]) -> Verdict:
    """``accusations`` maps each node to the parties it names (0 = the coordinator)."""
    votes: dict[int, set[int]] = {}
    for accuser, named in accusations.items():
        for accused in named:
            if accused is not None and accused != accuser:
                votes.setdefault(accused, set()).add(accuser)
    ranked = sorted(votes, key=lambda p: (-len(votes[p]), p))
    ordered = {p: sorted(votes[p]) for p in ranked}
    if not ranked:
        return Verdict(None, ordered, False)
    top = len(votes[ranked[0]])
    tie = sum(1 for p in ranked if len(votes[p]) == top) > 1
    return Verdict(ranked[0], ordered, tie)


def culprit_of(exc: grpc.RpcError) -> int | None:
    """The culprit a node named in an ABORTED status (its trailing metadata)."""
    for key, value in exc.trailing_metadata() or ():
        if key == "culprit" and value not in ("None", ""):
            return int(value)
    return None
