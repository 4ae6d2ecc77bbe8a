"""One initiator's recorded spends, sorted by time: what a node's reads and its own
checks of the rolling 24-hour limit take from its ledger.

Every check sums the union of a read quorum's views and this node's own entries
(``zero_trust/spend_quorum.py``), so what a check needs is the entries after a time:
kept sorted, that is a binary search and a slice, whatever order entries arrive in
(replayed notes may be older than ones already recorded). A request id is recorded once.
"""

from __future__ import annotations

import bisect
from decimal import Decimal


class SpendLedger:
    def __init__(self) -> None:
        self._times: list[float] = []  # sorted
        self._amounts: list[Decimal] = []  # in the order of _times
        self._ids: list[str] = []  # in the order of _times
        self._known: set[str] = set()

    def __contains__(self, entry_id: str) -> bool:
        return entry_id in self._known

    def __len__(self) -> int:
        return len(self._times)

    def ids(self) -> list[str]:
        return list(self._ids)

    def add(self, entry_id: str, at: float, amount: Decimal) -> None:
        """Record an entry once (a second add of the same id is ignored)."""
        if entry_id in self._known:
            return
        i = bisect.bisect_right(self._times, at)
        self._times.insert(i, at)
        self._amounts.insert(i, amount)
        self._ids.insert(i, entry_id)
        self._known.add(entry_id)

    def entries(self, after: float) -> list[tuple[str, float, Decimal]]:
        """(id, time, amount) of the entries with time > ``after``, oldest first."""
        k = bisect.bisect_right(self._times, after)
        return list(zip(self._ids[k:], self._times[k:], self._amounts[k:], strict=True))

    def forget_before(self, time: float) -> None:
        """Drop entries at or before ``time`` (older than any window still asked for)."""
        k = bisect.bisect_right(self._times, time)
        self._known.difference_update(self._ids[:k])
        del self._times[:k], self._amounts[:k], self._ids[:k]
