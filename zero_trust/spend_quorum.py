"""Limits that hold across signer subsets: a write quorum records a spend before a read
quorum reports what it holds, and a signer sums what the read quorum reports (DESIGN §4).

Why. Each signer node keeps its own 24-hour ledger. If a node counted only what it signed
itself, a hostile coordinator spreading requests over signer subsets — (1,2), (1,3),
(2,3) of a 2-of-3 key — would get up to n/t times a limit signed, every node honestly
under it. Summing over the subsets needs every signer to learn what the others signed,
and what is being signed concurrently, without trusting the coordinator that carries the
messages.

The rule (a classic write-then-read quorum; the n nodes are honest, the coordinator that
orders and relays every message is not):

1. **Reserve** (write quorum W = n − t + 1). A node checks the request's authorization
   against its own ledger, records the spend durably and only then signs a *receipt*
   naming the request (key, request id, digest).
2. **Read** (read quorum t, the signer's own ledger counting as one read). Shown receipts
   from W distinct nodes, a node signs a *view*: its ledger entries of the initiator in
   the window, bound to the request and to the exact set of receipts it saw.
3. **Sign.** A signer releases σ_i only when it holds ≥ W receipts, t − 1 views from other
   nodes attesting exactly those receipts, and its policy check passes with the usage
   summed over the union of the views and its own ledger (each request id counted once).

Why it holds. Any W nodes and any t nodes share a node (W + t = n + 1). Take, among the
spends signed in a window, the pair (spend R, signer s) whose earliest read is the latest.
Every other signed spend R' was recorded by W nodes before its own earliest read (each
view attests the receipts it saw, and a node's own read happens when it signs), hence
before every read for R at s; one of those W nodes is in s's read quorum and reported R'.
So s summed every other spend with R and released σ_s only under the limit: the total
signed never exceeds it, whatever subsets, orders and withheld messages the coordinator
chooses. A spend reserved but never signed still counts for 24 hours (like a card
authorization hold): only a request with valid approvals can be reserved, so this
cannot burn a limit that those approvals could not have spent anyway.

The quorum sizes are fixed by the cluster's n and t; mixing sizes per request would
break the intersection, so a signer accepts no other. Pure: statements are canonical
bytes; signing and verifying them with the nodes' identity keys is the caller's.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from mpcnode.core.canonical_json import canonical_json, parse_json
from zero_trust.authorization import AuthorizationDenied
from zero_trust.policy.policy_canonical import decimal_text

RECEIPT_DOMAIN = "mpcnode/spend-receipt/v1"
VIEW_DOMAIN = "mpcnode/spend-view/v1"
WINDOW_S = 86400
"""The policy's rolling window: a daily limit bounds what is signed in any 24 hours."""
VIEW_MARGIN_S = 120
"""A view reports entries this much older than the window as well, so a signer whose clock
is ahead of the reporting node's (within the allowed skew) still sees every entry it
must count."""
MAX_VIEW_ENTRIES = 4_000
"""At most this many entries of one initiator in one view, i.e. signed requests per
initiator per 24 hours (a request id of up to 128 bytes, an amount and a time: at most
~200 bytes an entry). A busier initiator (a bot) is refused with a clear message; its
views, carried in every sign request, would otherwise outgrow the request bound."""
MAX_STATEMENT_BYTES = MAX_VIEW_ENTRIES * 200 + 4096
MAX_RECEIPT_BYTES = 1024


class SpendQuorumError(AuthorizationDenied):
    """A receipt or view is malformed, or the quorum material falls short; says which."""


@dataclass(frozen=True)
class SpendSubject:
    """What receipts and views are bound to: one request's spend under one key."""

    key_id: bytes
    request_id: str
    digest: bytes
    initiator: str

    def fields(self) -> dict[str, object]:
        return {"key_id": self.key_id.hex(), "request_id": self.request_id,
                "digest": self.digest.hex(), "initiator": self.initiator}


@dataclass(frozen=True)
class SpendEntry:
    """One recorded spend as a view reports it: whole seconds, rounded up, so an entry
    stays in a window at least as long as it does on the node that recorded it."""

    request_id: str
    usd: Decimal
    at: int


@dataclass(frozen=True)
class SpendView:
    party: int
    subject: SpendSubject
    receipts: tuple[int, ...]  # the parties whose receipts the viewing node verified
    entries: tuple[SpendEntry, ...]


def write_quorum(n: int, t: int) -> int:
    """How many nodes must have recorded a spend before it may be read."""
    return n - t + 1


def receipt_statement(party: int, subject: SpendSubject) -> bytes:
    """What node ``party`` signs once it has durably recorded the spend."""
    return canonical_json({"domain": RECEIPT_DOMAIN, "party": party, **subject.fields()},
                          ascii_only=True)


def view_statement(party: int, subject: SpendSubject, receipts: Iterable[int],
                   entries: Iterable[SpendEntry]) -> bytes:
    """What node ``party`` signs as its read: its entries for the subject's initiator."""
    rows = sorted(entries, key=lambda e: (e.at, e.request_id))
    if len(rows) > MAX_VIEW_ENTRIES:
        raise SpendQuorumError(f"more than {MAX_VIEW_ENTRIES} ledger entries for initiator "
                               f'"{subject.initiator}" in 24 hours: a view cannot carry them')
    return canonical_json({
        "domain": VIEW_DOMAIN, "party": party, **subject.fields(),
        "receipts": sorted(set(receipts)),
        "entries": [[e.request_id, decimal_text(e.usd), e.at] for e in rows]}, ascii_only=True)


def entry_at(at: float) -> int:
    return math.ceil(at)


def parse_view(statement: bytes) -> SpendView:
    """A view's statement, refused unless it is exactly what ``view_statement`` writes."""
    if len(statement) > MAX_STATEMENT_BYTES:
        raise SpendQuorumError(f"a spend view has at most {MAX_STATEMENT_BYTES} bytes")
    try:
        doc = parse_json(statement, floats=False)  # nesting bounded before the C parser
        if not isinstance(doc, dict) or doc.get("domain") != VIEW_DOMAIN:
            raise SpendQuorumError("not a spend view")
        subject = SpendSubject(bytes.fromhex(doc["key_id"]), str(doc["request_id"]),
                               bytes.fromhex(doc["digest"]), str(doc["initiator"]))
        entries = tuple(SpendEntry(str(rid), Decimal(usd), int(at))
                        for rid, usd, at in doc["entries"])
        view = SpendView(int(doc["party"]), subject,
                         tuple(int(p) for p in doc["receipts"]), entries)
    except SpendQuorumError:
        raise
    except (ValueError, TypeError, KeyError, InvalidOperation):
        raise SpendQuorumError("a spend view is malformed") from None
    if any(not e.usd.is_finite() or e.usd < 0 for e in entries):
        raise SpendQuorumError("a spend view reports an amount that is not a USD value")
    if view_statement(view.party, subject, view.receipts, entries) != statement:
        raise SpendQuorumError("a spend view is not in its canonical form")
    return view


def check_quorum(n: int, t: int, own_party: int, receipt_parties: Sequence[int],
                 views: Sequence[SpendView], subject: SpendSubject) -> None:
    """Refuse unless the receipts form a write quorum and the views (bound to this spend
    and to exactly these receipts) with this node's own ledger form a read quorum."""
    receipts = sorted(set(receipt_parties))
    needed = write_quorum(n, t)
    if len(receipts) < needed:
        raise SpendQuorumError(
            f"the spend is recorded by {len(receipts)} node(s) {receipts}: a signature needs "
            f"it recorded by {needed} of the {n} nodes first (limits across signer subsets)")
    readers = {own_party}
    for view in views:
        if view.subject != subject:
            raise SpendQuorumError(f"node {view.party}'s ledger view is for another request")
        if list(view.receipts) != receipts:
            raise SpendQuorumError(
                f"node {view.party}'s ledger view attests receipts {list(view.receipts)}, "
                f"not the {receipts} this request carries")
        readers.add(view.party)
    if len(readers) < t:
        raise SpendQuorumError(
            f"ledger views from {len(readers) - 1} other node(s): a signature needs the "
            f"ledgers of {t} nodes (this one included) read after the spend was recorded")


def union_usage(views: Sequence[SpendView], own: Iterable[SpendEntry], *, now: float,
                excluding: str) -> Decimal:
    """The initiator's usage in the window ending ``now``: every request id reported by
    any view or by this node's own ledger, counted once (at its latest reported time),
    without the request being decided."""
    seen: dict[str, SpendEntry] = {}
    for entry in [e for v in views for e in v.entries] + list(own):
        held = seen.get(entry.request_id)
        if held is None or entry.at > held.at or entry.usd > held.usd:
            seen[entry.request_id] = SpendEntry(
                entry.request_id, max(entry.usd, held.usd) if held else entry.usd,
                max(entry.at, held.at) if held else entry.at)
    cutoff = now - WINDOW_S
    return sum((e.usd for rid, e in seen.items() if rid != excluding and e.at > cutoff),
               Decimal(0))


