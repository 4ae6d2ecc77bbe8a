"""Several JSON-RPC endpoints of one chain, cross-checked before the OMS acts (issue 5 §2).

One endpoint can lie, lag or sit on a fork, so nothing here trusts a single answer:
- every endpoint must report the configured chain id before it is used;
- the head is the block a quorum (by default a majority) of endpoints report at the same
  height: the highest height that a quorum has reached. No quorum → ``EndpointsDisagree``
  or ``TooFewEndpoints`` (both ``NoAgreedHead``), and the OMS broadcasts nothing until the
  endpoints agree again;
- a transaction counts as included only in a block on the agreed chain, and as final
  (``Confirmed`` / ``Failed``) only when a quorum of endpoints returns the same receipt and
  it is ``confirmations`` blocks deep. An inclusion whose block left the agreed chain is
  ``Reorged``: the same signed bytes must be broadcast again.

Broadcasting is idempotent: the transaction hash is Keccak-256 of the raw bytes, and a node
answering "already known", or one that has already mined the transaction, counts as
accepted; so an OMS that restarts between broadcast and confirmation re-sends the same
bytes without risk of a second transaction. Not thread-safe: one manager per thread.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from ethereum.hashing import keccak256
from oms_core.chain.endpoints import Endpoint, EndpointError, Receipt
from oms_core.chain.web3_endpoint import TransactionRejected
from oms_core.oms_core_errors import OmsCoreError

log = logging.getLogger("oms")

T = TypeVar("T")

# Node replies meaning "I have this very transaction already" (geth, erigon, besu, nethermind,
# anvil): success for an idempotent broadcast.
_ALREADY_KNOWN = ("already known", "known transaction", "alreadyknown", "already imported",
                  "already exists", "already in the pool")
# Replies that a retry cannot change; retrying only delays the error.
_DEFINITIVE = ("nonce too low", "invalid transaction nonce", "insufficient funds",
               "underpriced", "intrinsic gas", "exceeds block gas limit", "invalid sender",
               "invalid signature", "invalid chain id")


class NodeManagerError(OmsCoreError):
    """Base of the node manager's refusals."""


class ChainIdCheckFailed(NodeManagerError):  # noqa: N818 - reads as what happened
    """Endpoints that are not on the configured chain (or did not say): none is used."""

    def __init__(self, expected: int, problems: Mapping[str, str]) -> None:
        self.expected = expected
        self.problems = dict(problems)
        listed = "; ".join(f"endpoint {name} {why}" for name, why in self.problems.items())
        super().__init__(f"refusing to use the endpoints of chain {expected}: {listed}")


class NoAgreedHead(NodeManagerError):  # noqa: N818 - reads as what happened
    """The endpoints give no quorum view of the chain; broadcasting stops until they do."""


@dataclass(frozen=True)
class EndpointView:
    endpoint: str
    height: int
    block_hash: bytes

    def __str__(self) -> str:
        return f"{self.endpoint} reports block {self.height} {_short(self.block_hash)}"


class EndpointsDisagree(NoAgreedHead):
    """No block hash has a quorum at the compared height; ``views`` says who reports what."""

    def __init__(self, height: int, views: Sequence[EndpointView], quorum: int,
                 lagging: Sequence[EndpointView] = ()) -> None:
        self.height = height
        self.views = tuple(views)
        self.lagging = tuple(lagging)
        text = (f"endpoints disagree on block {height}: "
                + "; ".join(str(v) for v in self.views))
        if self.lagging:
            text += " (behind: " + "; ".join(str(v) for v in self.lagging) + ")"
        super().__init__(f"{text}. No {quorum} of them agree: not broadcasting until they do")


class TooFewEndpoints(NoAgreedHead):
    """Fewer than a quorum of endpoints answered."""

    def __init__(self, what: str, answered: int, quorum: int,
                 failures: Mapping[str, str]) -> None:
        self.failures = dict(failures)
        listed = "; ".join(f"{name}: {why}" for name, why in self.failures.items())
        super().__init__(f"only {answered} endpoint(s) answered for {what}, {quorum} needed "
                         f"({listed}); not broadcasting until a quorum answers")


class BroadcastFailed(NodeManagerError):  # noqa: N818 - reads as what happened
    """No endpoint accepted the transaction."""

    def __init__(self, tx_hash: bytes, failures: Mapping[str, str]) -> None:
        self.tx_hash = tx_hash
        self.failures = dict(failures)
        listed = "; ".join(f"{name}: {why}" for name, why in self.failures.items())
        super().__init__(f"no endpoint accepted transaction 0x{tx_hash.hex()} ({listed})")


class _Refused(OmsCoreError):  # noqa: N818 - internal: an endpoint's final answer, not retried
    pass


@dataclass(frozen=True)
class Head:
    """The agreed head and who stands where relative to it."""

    number: int
    hash: bytes
    agreeing: tuple[str, ...]  # report this very block at this height
    lagging: tuple[str, ...]  # latest block below it (not a conflicting view)


@dataclass(frozen=True)
class Pending:
    def __str__(self) -> str:
        return "pending (in no block of the agreed chain)"


@dataclass(frozen=True)
class Included:
    block_number: int
    block_hash: bytes
    confirmations: int  # 1 = in the head block
    reverted: bool

    def __str__(self) -> str:
        outcome = "reverted, " if self.reverted else ""
        return (f"included in block {self.block_number} ({outcome}"
                f"{self.confirmations} confirmation(s))")


@dataclass(frozen=True)
class Confirmed:
    block_number: int
    block_hash: bytes
    confirmations: int

    def __str__(self) -> str:
        return f"confirmed in block {self.block_number} ({self.confirmations} confirmations)"


@dataclass(frozen=True)
class Failed:
    """Final, like ``Confirmed``, but the transaction reverted (its nonce and gas are spent)."""

    block_number: int
    block_hash: bytes
    confirmations: int

    def __str__(self) -> str:
        return f"reverted in block {self.block_number} ({self.confirmations} confirmations)"


@dataclass(frozen=True)
class Reorged:
    """Was included in this block, which is no longer on the agreed chain: rebroadcast."""

    block_number: int
    block_hash: bytes

    def __str__(self) -> str:
        return (f"reorged out: block {self.block_number} {_short(self.block_hash)} "
                "is no longer canonical")


TxStatus = Pending | Included | Confirmed | Failed | Reorged


@dataclass(frozen=True)
class WaitProgress:
    """What ``wait_confirmed`` reports after every poll."""

    elapsed_s: float
    status: TxStatus | None  # None while the endpoints give no agreed view
    problem: str | None  # why there is no status, or why a rebroadcast failed


class ConfirmationTimeout(NodeManagerError):  # noqa: N818 - reads as what happened
    """Not final in time; the transaction may still confirm, so poll again, never re-sign."""

    def __init__(self, tx_hash: bytes, timeout_s: float, last: TxStatus | None,
                 problem: str | None) -> None:
        self.tx_hash = tx_hash
        self.last = last
        state = str(last) if last is not None else f"no agreed view: {problem}"
        super().__init__(f"transaction 0x{tx_hash.hex()} not final after {timeout_s:g} s; "
                         f"last seen {state}")


class NodeManager:
    """The chain as a quorum of ``endpoints`` sees it.

    ``clock`` and ``sleep`` (seconds) drive the waits and retries; tests pass fakes.
    """

    def __init__(self, endpoints: Sequence[Endpoint], *, chain_id: int, confirmations: int,
                 quorum: int | None = None, retry_attempts: int = 3,
                 retry_wait_s: float = 0.5, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        names = [e.name for e in endpoints]
        if not endpoints:
            raise ValueError("a node manager needs at least one endpoint")
        if len(set(names)) != len(names):
            raise ValueError(f"endpoint names must be unique: {names}")
        if chain_id <= 0 or confirmations < 1 or retry_attempts < 1:
            raise ValueError("chain id, confirmations and retry attempts must be positive")
        quorum = len(endpoints) // 2 + 1 if quorum is None else quorum
        if not len(endpoints) // 2 < quorum <= len(endpoints):
            raise ValueError(f"quorum {quorum} of {len(endpoints)} endpoints must be a "
                             "majority (two disjoint groups could each have a smaller one)")
        self._endpoints = {e.name: e for e in endpoints}
        self.chain_id = chain_id
        self.confirmations = confirmations
        self.quorum = quorum
        self._retry_attempts = retry_attempts
        self._retry_wait_s = retry_wait_s
        self._clock = clock
        self._sleep = sleep
        self._chain_checked = False
        self._inclusions: dict[bytes, tuple[int, bytes]] = {}  # last seen, to spot reorgs

    def check_chain_ids(self) -> None:
        """Refuse (``ChainIdCheckFailed``) unless every endpoint reports ``chain_id``."""
        problems: dict[str, str] = {}
        for name, endpoint in self._endpoints.items():
            try:
                reported = endpoint.chain_id()
            except EndpointError as exc:
                problems[name] = f"did not report its chain id ({exc})"
                continue
            if reported != self.chain_id:
                problems[name] = f"is on chain {reported}"
        if problems:
            raise ChainIdCheckFailed(self.chain_id, problems)
        self._chain_checked = True

    def head(self) -> Head:
        """The block a quorum reports at the highest height a quorum has reached."""
        if not self._chain_checked:
            self.check_chain_ids()
        latest, failures = self._ask(self._endpoints, lambda e: e.block(None))
        if len(latest) < self.quorum:
            raise TooFewEndpoints("the latest block", len(latest), self.quorum, failures)
        height = sorted((b.number for b in latest.values()), reverse=True)[self.quorum - 1]
        ahead = {n: self._endpoints[n] for n, b in latest.items() if b.number > height}
        at_height, more_failures = self._ask(ahead, lambda e: e.block(height))
        failures.update(more_failures)
        hashes = {n: b.hash for n, b in latest.items() if b.number == height}
        hashes.update((n, b.hash) for n, b in at_height.items() if b.number == height)
        lagging = [EndpointView(n, b.number, b.hash) for n, b in latest.items()
                   if b.number < height]
        agreed = self._quorum_value(hashes)
        if agreed is None:
            if len(hashes) < self.quorum:
                raise TooFewEndpoints(f"block {height}", len(hashes), self.quorum, failures)
            views = [EndpointView(n, height, h) for n, h in hashes.items()]
            raise EndpointsDisagree(height, views, self.quorum, lagging)
        return Head(height, agreed, tuple(n for n in self._endpoints if hashes.get(n) == agreed),
                    tuple(v.endpoint for v in lagging))

    def broadcast(self, raw: bytes) -> bytes:
        """Send the signed ``raw`` transaction to every endpoint in line with the agreed head.

        Refused while the endpoints disagree (``NoAgreedHead``). Accepted when at least one
        endpoint takes it, says it already has it, or has already mined it; returns the
        transaction hash. ``BroadcastFailed`` lists every endpoint's answer otherwise.
        """
        tx_hash = keccak256(raw)
        head = self.head()
        accepted: list[str] = []
        failures: dict[str, str] = {}
        for name in head.agreeing + head.lagging:
            endpoint = self._endpoints[name]
            try:
                self._send_with_retries(endpoint, raw, tx_hash)
            except (EndpointError, _Refused) as exc:
                if not self._has_receipt(endpoint, tx_hash):
                    failures[name] = str(exc)
                    continue
            accepted.append(name)
        if not accepted:
            raise BroadcastFailed(tx_hash, failures)
        for name, why in failures.items():
            log.warning("endpoint %s did not take transaction 0x%s: %s", name, tx_hash.hex(),
                        why)
        return tx_hash

    def status(self, tx_hash: bytes) -> TxStatus:
        """Where the transaction stands on the agreed chain (see the module docstring)."""
        head = self.head()
        agreeing = {n: self._endpoints[n] for n in head.agreeing}
        answers, failures = self._ask(agreeing, lambda e: e.receipt(tx_hash))
        if not answers:
            raise TooFewEndpoints(f"the receipt of 0x{tx_hash.hex()}", 0, 1, failures)
        votes = Counter(_inclusion_of(r) for r in answers.values()
                        if r is not None and r.tx_hash == tx_hash)
        canonical: dict[int, bytes] = {head.number: head.hash}
        stale: tuple[int, bytes] | None = None
        for (number, block_hash, success), count in votes.most_common():
            if number > head.number:
                continue  # in a block beyond the agreed head: not agreed yet
            if self._canonical_hash(head, number, canonical) != block_hash:
                stale = (number, block_hash)
                continue
            return self._included(tx_hash, head, number, block_hash, success, count)
        seen = self._inclusions.get(tx_hash)
        if stale is None and seen is not None and seen[0] <= head.number \
                and self._canonical_hash(head, seen[0], canonical) != seen[1]:
            stale = seen
        if stale is not None:
            self._inclusions.pop(tx_hash, None)
            return Reorged(*stale)
        return Pending()

    def wait_confirmed(self, tx_hash: bytes, *, timeout_s: float, poll_s: float,
                       on_progress: Callable[[WaitProgress], None] | None = None,
                       rebroadcast_raw: bytes | None = None) -> Confirmed | Failed:
        """Poll ``status`` until the transaction is final or ``timeout_s`` passes.

        A disagreement of the endpoints is waited out (and reported), not fatal. After a
        reorg the signed bytes ``rebroadcast_raw`` are sent again when given.
        """
        start = self._clock()
        last: TxStatus | None = None
        while True:
            problem: str | None = None
            status: TxStatus | None = None
            try:
                status = last = self.status(tx_hash)
            except NoAgreedHead as exc:
                problem = str(exc)
            if isinstance(status, Confirmed | Failed):
                self._report(on_progress, start, status, problem)
                return status
            if isinstance(status, Reorged) and rebroadcast_raw is not None:
                try:
                    self.broadcast(rebroadcast_raw)
                except NodeManagerError as exc:
                    problem = f"rebroadcast after the reorg failed: {exc}"
            elapsed = self._report(on_progress, start, status, problem)
            if elapsed >= timeout_s:
                raise ConfirmationTimeout(tx_hash, timeout_s, last, problem)
            self._sleep(min(poll_s, timeout_s - elapsed))

    def _report(self, on_progress: Callable[[WaitProgress], None] | None, start: float,
                status: TxStatus | None, problem: str | None) -> float:
        elapsed = self._clock() - start
        if on_progress is not None:
            on_progress(WaitProgress(elapsed, status, problem))
        return elapsed

    def _included(self, tx_hash: bytes, head: Head, number: int, block_hash: bytes,
                  success: bool, votes: int) -> TxStatus:
        depth = head.number - number + 1
        if depth >= self.confirmations and votes >= self.quorum:
            self._inclusions.pop(tx_hash, None)
            if success:
                return Confirmed(number, block_hash, depth)
            return Failed(number, block_hash, depth)
        self._inclusions[tx_hash] = (number, block_hash)
        return Included(number, block_hash, depth, reverted=not success)

    def _canonical_hash(self, head: Head, number: int, known: dict[int, bytes]) -> bytes:
        """The agreed chain's block hash at ``number`` ≤ head (a quorum vote, memoised)."""
        if number not in known:
            agreeing = {n: self._endpoints[n] for n in head.agreeing}
            blocks, failures = self._ask(agreeing, lambda e: e.block(number))
            hashes = {n: b.hash for n, b in blocks.items() if b.number == number}
            agreed = self._quorum_value(hashes)
            if agreed is None:
                if len(hashes) < self.quorum:
                    raise TooFewEndpoints(f"block {number}", len(hashes), self.quorum,
                                          failures)
                raise EndpointsDisagree(number, [EndpointView(n, number, h)
                                                 for n, h in hashes.items()], self.quorum)
            known[number] = agreed
        return known[number]

    def _quorum_value(self, hashes: Mapping[str, bytes]) -> bytes | None:
        counted = Counter(hashes.values()).most_common(1)
        if counted and counted[0][1] >= self.quorum:
            return counted[0][0]
        return None

    def _send_with_retries(self, endpoint: Endpoint, raw: bytes, tx_hash: bytes) -> None:
        retrying = Retrying(stop=stop_after_attempt(self._retry_attempts),
                            wait=wait_exponential(multiplier=self._retry_wait_s),
                            retry=retry_if_exception_type(EndpointError),
                            sleep=self._sleep, reraise=True)
        for attempt in retrying:
            with attempt:
                _send_once(endpoint, raw, tx_hash)

    @staticmethod
    def _has_receipt(endpoint: Endpoint, tx_hash: bytes) -> bool:
        try:
            return endpoint.receipt(tx_hash) is not None
        except EndpointError:
            return False

    @staticmethod
    def _ask(endpoints: Mapping[str, Endpoint], question: Callable[[Endpoint], T]
             ) -> tuple[dict[str, T], dict[str, str]]:
        """Each endpoint's answer, and the failures of those that did not answer."""
        answers: dict[str, T] = {}
        failures: dict[str, str] = {}
        for name, endpoint in endpoints.items():
            try:
                answers[name] = question(endpoint)
            except EndpointError as exc:
                failures[name] = str(exc) or type(exc).__name__
        return answers, failures


def _send_once(endpoint: Endpoint, raw: bytes, tx_hash: bytes) -> None:
    try:
        returned = endpoint.send_raw_transaction(raw)
    except EndpointError as exc:
        message = str(exc).lower()
        if any(marker in message for marker in _ALREADY_KNOWN):
            return
        if isinstance(exc, TransactionRejected) or any(m in message for m in _DEFINITIVE):
            raise _Refused(str(exc)) from exc
        raise
    if returned != tx_hash:
        raise _Refused(f"answered with hash 0x{returned.hex()}, not the transaction's hash")


def _inclusion_of(receipt: Receipt) -> tuple[int, bytes, bool]:
    return receipt.block_number, receipt.block_hash, receipt.status == 1


def _short(block_hash: bytes) -> str:
    return "0x" + block_hash.hex()[:12] + "…"
