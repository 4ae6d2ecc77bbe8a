"""Anchoring the audit log on chain, as the core sees it: which head to anchor next, and the
audit entry that records an anchor once it is mined.

The transaction itself is sent by the daemon (``oms_core.daemon.runtime``) off the core's
thread, with ``oms_core.chain.audit_anchor``: waiting for a confirmation must not hold up
requests. The record is for people reading the log; an auditor does not need it (``oms
audit verify --anchors`` reads the anchors from the chain, never from this database), and
an anchor mined before a crash that kept it from being recorded is still checked.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from oms_core.app.core_context import CoreContext
from oms_core.app.oms_db import transaction
from zero_trust.audit_tree.tree_head import SignedTreeHead

ANCHORED = "audit.anchored"  # the entry's action
ACTOR = "oms"


@dataclass(frozen=True)
class AnchorRecord:
    """A mined anchor of ``head``, as its audit entry records it."""

    head: SignedTreeHead
    chain_id: int
    contract: str
    tx_hash: bytes
    block_number: int


class AuditAnchoring:
    def __init__(self, ctx: CoreContext, newest_head: Callable[[], SignedTreeHead]) -> None:
        self._ctx = ctx
        self._newest_head = newest_head

    def head_to_anchor(self) -> SignedTreeHead | None:
        """A newly signed head over every entry, or None when nothing but the last anchor's
        own record was appended since that anchor (an idle OMS spends no gas)."""
        ctx = self._ctx
        with ctx.lock:
            last = self.last_anchored_size()
            if last is not None and ctx.audit.size(ctx.conn) <= last + 1:
                return None
            head = self._newest_head()
        return head if head.tree_size > 0 else None

    def last_anchored_size(self) -> int | None:
        """The tree size of the newest recorded anchor (None: none yet)."""
        row = self._ctx.conn.execute(
            "SELECT details FROM audit_entries WHERE action = ? ORDER BY idx DESC LIMIT 1",
            (ANCHORED,)).fetchone()
        if row is None:
            return None
        size = json.loads(row[0]).get("tree_size")
        return size if isinstance(size, int) else None

    def record(self, anchor: AnchorRecord) -> None:
        ctx = self._ctx
        head = anchor.head
        with ctx.lock, transaction(ctx.conn):
            ctx.audit.append(ctx.conn, actor=ACTOR, action=ANCHORED,
                             subject=f"0x{anchor.tx_hash.hex()}", at=ctx.clock(), details={
                                 "tree_size": head.tree_size,
                                 "root_hash": head.root_hash.hex(),
                                 "head_timestamp_ms": head.timestamp_ms,
                                 "chain_id": anchor.chain_id, "contract": anchor.contract,
                                 "block_number": anchor.block_number})
