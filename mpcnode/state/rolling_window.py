"""One initiator's signed amounts over time, summed over a trailing window.

A node checks the rolling 24-hour limit on every signature; summing the whole day's
entries each time costs O(entries) on the signing path, which a busy desk (thousands of
transfers a day) would feel. Entries are kept sorted by time with a running sum of
those inside the last window asked for, so a check moves the window start forward and
costs O(log n) amortised, whatever order the entries arrive in (replayed notes may be
older than ones already counted) and whether the clock moves forward or back.
"""

from __future__ import annotations

import bisect
from decimal import Decimal


class RollingWindow:
    def __init__(self, length: float) -> None:
        self.length = length
        self._times: list[float] = []  # sorted
        self._amounts: list[Decimal] = []  # in the order of _times
        self._ids: list[str] = []  # in the order of _times
        self._by_id: dict[str, tuple[float, Decimal]] = {}
        self._cutoff = float("-inf")  # entries with time > cutoff are in the window
        self._start = 0  # index of the first entry in the window
        self._total = Decimal(0)  # sum of the amounts in the window

    def __contains__(self, entry_id: str) -> bool:
        return entry_id in self._by_id

    def __len__(self) -> int:
        return len(self._times)

    def ids(self) -> list[str]:
        return list(self._ids)

    def add(self, entry_id: str, at: float, amount: Decimal) -> None:
        """Record an entry once (a second add of the same id is ignored)."""
        if entry_id in self._by_id:
            return
        i = bisect.bisect_right(self._times, at)
        self._times.insert(i, at)
        self._amounts.insert(i, amount)
        self._ids.insert(i, entry_id)
        self._by_id[entry_id] = (at, amount)
        if at > self._cutoff:
            self._total += amount
        else:
            self._start += 1  # inserted before the window

    def total(self, now: float, excluding: str = "") -> Decimal:
        """Sum of the amounts with ``now - length < time``, without entry ``excluding``."""
        cutoff = now - self.length
        if cutoff >= self._cutoff:
            while self._start < len(self._times) and self._times[self._start] <= cutoff:
                self._total -= self._amounts[self._start]
                self._start += 1
        else:  # the clock went back: recount from the new start
            self._start = bisect.bisect_right(self._times, cutoff)
            self._total = sum(self._amounts[self._start:], Decimal(0))
        self._cutoff = cutoff
        total = self._total
        own = self._by_id.get(excluding)
        if own is not None and own[0] > cutoff:
            total -= own[1]
        return total

    def forget_before(self, time: float) -> None:
        """Drop entries at or before ``time`` (older than any window still asked for)."""
        k = bisect.bisect_right(self._times, time)
        if k == 0:
            return
        for entry_id in self._ids[:k]:
            del self._by_id[entry_id]
        dropped_in_window = sum(self._amounts[self._start:k], Decimal(0))
        self._total -= dropped_in_window
        self._start = max(0, self._start - k)
        del self._times[:k], self._amounts[:k], self._ids[:k]
