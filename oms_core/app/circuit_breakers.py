"""Per-protocol circuit breakers: a paused protocol blocks every request that touches it.

A risk officer pauses a protocol by hand (the caller checks the permission), or the OMS
pauses it when the value locked in a monitored contract falls by more than a configured
share within a time window: the sign of an exploit in progress, when every further deposit
would be lost (issue 5 §4, the DeFi scenario's "continuous monitoring"). Pauses, resumes
and TVL samples live in the OMS SQLite database; every pause and resume commits with its
audit entry. A protocol is the ``protocol`` name of address-book contract entries
(``AddressBookEntry.protocol``), so one breaker covers a DEX's router, pools and vaults.

The emergency sweep moves everything to the policy's pre-approved holding address (the
address-book entry labelled ``holding`` by default). ``build_sweep`` only builds the
transactions: they go through the normal request path and are signed under the policy
rule written for them (e.g. a rule for the holding destination that requires the risk
officer), so a sweep is never a way around the policy.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Context, Decimal, DivisionByZero, InvalidOperation, Overflow

from ethereum import erc20
from ethereum.transactions import TYPE_EIP1559, UnsignedTx
from oms_core.app.audit_sink import AuditSink
from oms_core.app.oms_db import check_opened, transaction
from oms_core.app.oms_errors import InvalidInputError, OmsError
from zero_trust.policy.document import NATIVE, Policy
from zero_trust.policy.usd import format_usd

AUTO_ACTOR = "circuit-breaker"
"""The actor of automatic pauses in the audit log."""

HOLDING_LABEL = "holding"
NATIVE_TRANSFER_GAS = 21_000
DEFAULT_TOKEN_TRANSFER_GAS = 100_000

_PROTOCOL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")  # as policy names
_CTX = Context(prec=50, traps=[InvalidOperation, DivisionByZero, Overflow])

class ProtocolPaused(OmsError):  # noqa: N818 - a state, as users read it
    """The request touches a paused protocol; it stays blocked until a risk officer resumes."""

    def __init__(self, state: PauseState) -> None:
        self.state = state
        super().__init__(f"protocol {state.protocol} is paused since "
                         f"{format_time(state.since)} by {state.by}: {state.reason}")


class NotPausedError(OmsError):
    """A resume of a protocol that is not paused."""


class TvlUnavailableError(OmsError):
    """Reading a monitored TVL failed; the other monitors were still observed."""


class SweepError(OmsError):
    """The emergency sweep cannot be built as asked (no holding address, no gas …)."""


@dataclass(frozen=True)
class PauseState:
    protocol: str
    since: float  # epoch seconds
    by: str  # a user id, or AUTO_ACTOR
    reason: str
    automatic: bool


@dataclass(frozen=True)
class TvlWatch:
    """Pause ``protocol`` when its TVL falls by more than ``max_drop`` (a fraction, e.g.
    0.3) below the highest sample of the last ``window_s`` seconds."""

    protocol: str
    read_tvl: Callable[[], Decimal]  # USD value locked in the monitored contract(s)
    max_drop: Decimal
    window_s: float

    def __post_init__(self) -> None:
        _check_protocol(self.protocol)
        if not Decimal(0) < self.max_drop < Decimal(1):
            raise InvalidInputError(f"{self.protocol}: max_drop must be a fraction between 0 "
                                    f"and 1 (0.3 for 30 %), not {self.max_drop}")
        if not self.window_s > 0:
            raise InvalidInputError(f"{self.protocol}: window_s must be positive")


def format_time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def format_window(seconds: float) -> str:
    """``45 s``, ``10 min``, ``2 h``: a window as the pause reason shows it."""
    if seconds < 120 and seconds != 60:
        return f"{seconds:g} s"
    if seconds < 7200:
        return f"{seconds / 60:g} min"
    return f"{seconds / 3600:g} h"


def _percent(fraction: Decimal) -> str:
    value = _CTX.multiply(fraction, Decimal(100)).quantize(Decimal("0.1"), ROUND_HALF_UP)
    return f"{value.normalize(_CTX):f} %"


def _check_protocol(protocol: str) -> str:
    if not isinstance(protocol, str) or not _PROTOCOL.fullmatch(protocol):
        raise InvalidInputError(f"{protocol!r} is not a protocol name (1-64 of A-Z a-z 0-9 "
                                "_ . : -)")
    return protocol


def _check_actor(by: str) -> str:
    if not isinstance(by, str) or not by.strip():
        raise InvalidInputError("a pause or resume needs the id of who did it")
    return by


class CircuitBreakers:
    """Pause state and TVL monitoring of protocols, on the OMS database connection."""

    def __init__(self, conn: sqlite3.Connection, audit: AuditSink,
                 watches: Sequence[TvlWatch] = ()) -> None:
        self._conn = conn
        self._audit = audit
        self._watches: dict[str, TvlWatch] = {}
        for watch in watches:
            if watch.protocol in self._watches:
                raise InvalidInputError(f"protocol {watch.protocol} is monitored twice")
            self._watches[watch.protocol] = watch
        check_opened(conn)

    # --- pause state ------------------------------------------------------------------

    def state(self, protocol: str) -> PauseState | None:
        """The protocol's pause, or None when it is running."""
        row = self._conn.execute("SELECT protocol, since, paused_by, reason, automatic FROM "
                                 "protocol_pauses WHERE protocol = ?", (protocol,)).fetchone()
        return None if row is None else PauseState(row[0], row[1], row[2], row[3],
                                                   bool(row[4]))

    def paused(self) -> tuple[PauseState, ...]:
        rows = self._conn.execute("SELECT protocol FROM protocol_pauses ORDER BY protocol")
        return tuple(s for (name,) in rows.fetchall()
                     if (s := self.state(name)) is not None)

    def monitored(self) -> tuple[str, ...]:
        """The protocols with a value-locked watch, sorted."""
        return tuple(sorted(self._watches))

    def check(self, protocol: str) -> None:
        """``ProtocolPaused`` if the protocol is paused."""
        state = self.state(protocol)
        if state is not None:
            raise ProtocolPaused(state)

    def check_transaction(self, policy: Policy, tx: UnsignedTx) -> None:
        """``ProtocolPaused`` if the transaction touches a paused protocol (see
        ``protocols_touched``)."""
        for protocol in sorted(protocols_touched(policy, tx)):
            self.check(protocol)

    def pause(self, protocol: str, *, by: str, reason: str, at: float) -> PauseState:
        """Pause by hand (a risk officer; the caller checks the permission). Pausing a
        paused protocol changes nothing and returns the pause in force."""
        _check_protocol(protocol)
        _check_actor(by)
        if not isinstance(reason, str) or not reason.strip():
            raise InvalidInputError("a pause needs a reason (it is shown on every blocked "
                                    "request)")
        with transaction(self._conn) as conn:
            current = self.state(protocol)
            if current is not None:
                return current
            state = PauseState(protocol, at, by, reason.strip(), automatic=False)
            self._insert(conn, state)
            self._audit.append(conn, actor=by, action="protocol.pause",
                               subject=f"protocol:{protocol}", at=at,
                               details={"reason": state.reason})
        return state

    def resume(self, protocol: str, *, by: str, at: float, note: str = "") -> PauseState:
        """End the pause (a risk officer) and return it. The TVL samples are cleared: the
        officer accepts the present level as the new baseline, or the old peak would trip
        the breaker again at the next sample."""
        _check_actor(by)
        with transaction(self._conn) as conn:
            current = self.state(protocol)
            if current is None:
                raise NotPausedError(f"protocol {protocol} is not paused")
            conn.execute("DELETE FROM protocol_pauses WHERE protocol = ?", (protocol,))
            conn.execute("DELETE FROM protocol_tvl_samples WHERE protocol = ?", (protocol,))
            self._audit.append(conn, actor=by, action="protocol.resume",
                               subject=f"protocol:{protocol}", at=at,
                               details={"paused_since": current.since,
                                        "paused_by": current.by,
                                        "pause_reason": current.reason, "note": note})
        return current

    @staticmethod
    def _insert(conn: sqlite3.Connection, state: PauseState) -> None:
        conn.execute("INSERT INTO protocol_pauses (protocol, since, paused_by, reason, "
                     "automatic) VALUES (?, ?, ?, ?, ?)",
                     (state.protocol, state.since, state.by, state.reason,
                      int(state.automatic)))

    # --- monitoring -------------------------------------------------------------------

    def observe(self, protocol: str, tvl: Decimal, now: float) -> PauseState | None:
        """Record a TVL sample; pause the protocol if TVL fell more than the watch allows
        below the window's peak. Returns the pause this sample caused, if any."""
        watch = self._watches.get(protocol)
        if watch is None:
            raise InvalidInputError(f"protocol {protocol} has no TVL monitor configured")
        if not isinstance(tvl, Decimal) or not tvl.is_finite() or tvl < 0:
            raise InvalidInputError(f"{protocol}: TVL must be a non-negative Decimal (USD), "
                                    f"not {tvl!r}")
        with transaction(self._conn) as conn:
            conn.execute("DELETE FROM protocol_tvl_samples WHERE protocol = ? AND at < ?",
                         (protocol, now - watch.window_s))
            conn.execute("INSERT INTO protocol_tvl_samples (protocol, at, tvl_usd) "
                         "VALUES (?, ?, ?)", (protocol, now, str(tvl)))
            rows = conn.execute("SELECT at, tvl_usd FROM protocol_tvl_samples WHERE "
                                "protocol = ? AND at <= ?", (protocol, now)).fetchall()
            peak_at, peak = max(((at, Decimal(v)) for at, v in rows), key=lambda r: r[1])
            if peak == 0 or self.state(protocol) is not None:
                return None
            drop = _CTX.divide(peak - tvl, peak)
            if drop <= watch.max_drop:
                return None
            reason = (f"TVL fell {_percent(drop)} within {format_window(watch.window_s)} "
                      f"(from {format_usd(peak)} to {format_usd(tvl)} USD; the limit is "
                      f"{_percent(watch.max_drop)})")
            state = PauseState(protocol, now, AUTO_ACTOR, reason, automatic=True)
            self._insert(conn, state)
            self._audit.append(conn, actor=AUTO_ACTOR, action="protocol.auto_pause",
                               subject=f"protocol:{protocol}", at=now,
                               details={"reason": reason, "tvl_usd": str(tvl),
                                        "peak_usd": str(peak), "peak_at": peak_at,
                                        "max_drop": str(watch.max_drop),
                                        "window_s": watch.window_s})
        return state

    def poll(self, now: float) -> tuple[PauseState, ...]:
        """Read every monitored TVL and observe it; returns the pauses this caused. A read
        that fails does not stop the others; ``TvlUnavailableError`` names it afterwards."""
        new: list[PauseState] = []
        failures: list[str] = []
        first_error: Exception | None = None
        for protocol, watch in sorted(self._watches.items()):
            try:
                tvl = watch.read_tvl()
            except Exception as exc:  # any monitor failure must leave the others running
                failures.append(f"{protocol}: {exc}")
                first_error = first_error or exc
                continue
            state = self.observe(protocol, tvl, now)
            if state is not None:
                new.append(state)
        if failures:
            raise TvlUnavailableError("cannot read the TVL of " + "; ".join(failures)
                                      ) from first_error
        return tuple(new)


def protocols_touched(policy: Policy, tx: UnsignedTx) -> frozenset[str]:
    """The protocols of the address-book entries the transaction calls or pays: the called
    contract, and for an ERC-20 ``transfer``/``approve`` also the recipient or spender (an
    approval to a paused pool touches it as much as a call does)."""
    addresses = {tx.to_address.lower()}
    try:
        call = erc20.decode(tx.data)
    except erc20.CallDecodeError:
        call = None
    if call is not None:
        addresses.add(call.counterparty_address.lower())
    touched = set()
    for address in addresses:
        entry = policy.entry(tx.chain_id, address)
        if entry is not None and entry.protocol is not None:
            touched.add(entry.protocol)
    return frozenset(touched)


# --------------------------------------------------------------------------- emergency sweep


@dataclass(frozen=True)
class SweepTransfer:
    """One transaction of the sweep: all of ``asset`` (base units) to the holding address."""

    asset: str
    amount: int
    tx: UnsignedTx


def build_sweep(policy: Policy, *, chain_id: int, balances: Mapping[str, int],
                first_nonce: int, max_fee_per_gas: int, max_priority_fee_per_gas: int,
                now: float, holding_label: str = HOLDING_LABEL,
                token_transfer_gas: int = DEFAULT_TOKEN_TRANSFER_GAS
                ) -> tuple[SweepTransfer, ...]:
    """EIP-1559 transactions moving every balance (asset symbol → base units) to the
    holding address: tokens first, then the native coin less the gas of the whole sweep
    at ``max_fee_per_gas`` (so the sweep can always pay for itself), consecutive nonces
    from ``first_nonce``. Pure: the caller reads balances, nonce and fees."""
    holding = next((e for e in policy.address_book if e.label == holding_label), None)
    if holding is None:
        raise SweepError(f'the policy has no address-book entry "{holding_label}" to sweep to')
    if holding.chain_id != chain_id:
        raise SweepError(f'address-book entry "{holding_label}" is on chain '
                         f"{holding.chain_id}, not {chain_id}")
    usable_at = holding.added_at + policy.cooldown_seconds
    if now < usable_at:
        raise SweepError(f'holding address "{holding_label}" is in its cool-down until '
                         f"{format_time(usable_at)}")
    native, tokens = _sweep_assets(policy, chain_id, balances)
    gas_budget = max_fee_per_gas * token_transfer_gas * len(tokens)
    native_balance = balances.get(native, 0) if native else 0
    if gas_budget > native_balance:
        raise SweepError(f"the sweep needs {gas_budget} wei of gas for {len(tokens)} token "
                         f"transfer(s) and the balance is {native_balance} wei")
    to = bytes.fromhex(holding.address[2:])

    def tx(nonce: int, target: bytes, value: int, data: bytes, gas: int) -> UnsignedTx:
        return UnsignedTx(TYPE_EIP1559, chain_id, nonce, target, value, data, gas,
                          max_fee_per_gas=max_fee_per_gas,
                          max_priority_fee_per_gas=max_priority_fee_per_gas)

    plan: list[SweepTransfer] = []
    for symbol, contract, amount in tokens:
        data = erc20.encode_transfer(to, amount)
        plan.append(SweepTransfer(symbol, amount, tx(first_nonce + len(plan),
                                                     bytes.fromhex(contract[2:]), 0, data,
                                                     token_transfer_gas)))
    left = native_balance - gas_budget - max_fee_per_gas * NATIVE_TRANSFER_GAS
    if native and left > 0:
        plan.append(SweepTransfer(native, left, tx(first_nonce + len(plan), to, left, b"",
                                                   NATIVE_TRANSFER_GAS)))
    return tuple(plan)


def _sweep_assets(policy: Policy, chain_id: int, balances: Mapping[str, int]
                  ) -> tuple[str | None, list[tuple[str, str, int]]]:
    """The native symbol (if on this chain) and the (symbol, contract, amount) of each token
    with a positive balance, by symbol."""
    native: str | None = None
    tokens: list[tuple[str, str, int]] = []
    for symbol, amount in sorted(balances.items()):
        asset = policy.asset(symbol)
        if asset is None:
            raise SweepError(f"{symbol} is not an asset of the policy")
        if asset.chain_id != chain_id:
            raise SweepError(f"{symbol} is on chain {asset.chain_id}, not {chain_id}")
        if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
            raise SweepError(f"the balance of {symbol} must be a non-negative integer "
                             "(base units)")
        if asset.contract == NATIVE:
            native = symbol
        elif amount > 0:
            tokens.append((symbol, asset.contract, amount))
    return native, tokens
