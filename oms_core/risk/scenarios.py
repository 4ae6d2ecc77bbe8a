"""The risk scenarios, modelled on the "Scenario-Based Risk Exposure Model" of the
reference article (/work/shared/reference/digital-asset-oms-security-article.txt).

Each scenario computes from the live configuration its potential loss (every control
failing), its residual loss (with the controls as configured) and one flag per missing
control. A residual above zero is not a flag by itself: a loss capped by a configured
24-hour limit is an accepted, bounded risk; a flag says a control is *missing*.
Likelihoods are indicative annual figures (the article's where it gives one), not computed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from oms_core.risk.exposure import Reach, approvals_needed, reach
from oms_core.risk.risk_config import RiskConfig
from zero_trust.policy.document import Action, DestinationCondition, EntryKind, Role, Rule
from zero_trust.policy.usd import format_usd

ZERO = Decimal(0)
_BPS = Decimal(10_000)
_EVERYONE = 1_000_000  # enough colluders to fill any approval rule


@dataclass(frozen=True)
class Scenario:
    """One row of the report."""

    key: str
    title: str
    likelihood: str
    potential_loss_usd: Decimal
    control: str
    residual_loss_usd: Decimal
    residual_note: str
    flags: tuple[str, ...]  # one reason per missing control; empty when none is missing

    @property
    def flagged(self) -> bool:
        return bool(self.flags)


def signer_node_compromise(config: RiskConfig) -> Scenario:
    t, n, wallet = config.threshold, config.parties, config.wallet_value_usd
    flags = ("t = 1: a single node's key share signs alone",) if t < 2 else ()
    return Scenario(
        "signer-node-compromise", "Single signer node (key share) compromise", "Low (0.5%)",
        wallet, f"CGGMP21 threshold signing, {t}-of-{n}",
        wallet if flags else ZERO,
        "one share signs alone" if flags else f"{t - 1} share(s) cannot sign", flags)


def trader_phishing(config: RiskConfig) -> Scenario:
    """A phished trader alone is capped by the 24 h limit; without phishing-resistant
    (WebAuthn) approvals the same campaign can phish the approvers too, which opens every
    approval rule a trader can start."""
    wallet = config.wallet_value_usd
    alone = reach(config.policy, people=1, role=Role.TRADER)
    flags = [f'rule "{r}" lets one trader move funds with neither a 24 h limit nor approvals'
             for r in alone.unbounded_rules]
    residual = alone
    if not config.webauthn_approvals:
        residual = reach(config.policy, people=_EVERYONE, role=Role.TRADER)
        flags.append("approvals are not WebAuthn-bound: phishing the approvers as well "
                     "opens every approval rule")
    return Scenario(
        "trader-phishing", "Phished trader credential", "Medium (5%)", wallet,
        "24 h limits; WebAuthn (hardware key) approvals above them",
        residual.loss(wallet), _reach_note(residual, "the trader's 24 h limit"), tuple(flags))


def insider_collusion(config: RiskConfig) -> Scenario:
    t, q, wallet = config.threshold, config.admin_quorum, config.wallet_value_usd
    pair = reach(config.policy, people=2)
    flags = []
    if t <= 2:
        flags.append(f"t = {t}: two colluding node operators reach the signing threshold")
    if q <= 2:
        flags.append(f"admin quorum {q}: two colluding admins can sign a new policy")
    flags += [f'rule "{r}": an initiator and one approver together move funds without a '
              "24 h limit" for r in pair.unbounded_rules]
    residual = wallet if (t <= 2 or q <= 2) else pair.loss(wallet)
    return Scenario(
        "insider-collusion", "Insider collusion (2 people)", "Very low (0.1%)", wallet,
        f"{t}-of-{config.parties} signing, admin quorum {q} of {config.admins}, approvals by "
        "2+ other people above limits", residual,
        "two people reach full control" if (t <= 2 or q <= 2)
        else _reach_note(pair, "a 24 h limit"), tuple(flags))


def coordinator_compromise(config: RiskConfig) -> Scenario:
    """DESIGN §4: nodes recompute the digest, hold the admin-signed policy and verify the
    approvals themselves. Assumes nodes authenticate the initiator and keep their own 24 h
    usage, as the zero-trust design requires."""
    wallet = config.wallet_value_usd
    flags = () if config.webauthn_approvals else (
        "approvals are not WebAuthn assertions the nodes verify: a compromised coordinator "
        "can claim them",)
    return Scenario(
        "coordinator-compromise", "Compromised coordinator / OMS host", "Low (1%)", wallet,
        "signer nodes re-check the signed policy bundle and the WebAuthn approvals",
        wallet if flags else ZERO,
        "the coordinator can claim approvals" if flags
        else "nodes refuse what the signed policy does not allow", flags)


def oracle_manipulation(config: RiskConfig) -> Scenario:
    """An understated price makes a transfer look small. Signed floors and cross-checked,
    fresh sources bound the understatement to the deviation tolerance."""
    wallet = config.wallet_value_usd
    flags: list[str] = []
    deviation = 0
    for asset in config.policy.assets:
        feed = config.oracles.get(asset.symbol)
        if asset.min_usd_price == 0:
            flags.append(f"asset {asset.symbol}: no signed price floor (min_usd_price = 0)")
        if feed is None:
            flags.append(f"asset {asset.symbol}: no price oracle configured")
            continue
        if feed.sources < 2:
            flags.append(f"asset {asset.symbol}: only {feed.sources} price source(s)")
        if feed.max_staleness_seconds is None:
            flags.append(f"asset {asset.symbol}: no staleness check")
        if feed.max_deviation_bps is None:
            flags.append(f"asset {asset.symbol}: no deviation check across sources")
        else:
            deviation = max(deviation, feed.max_deviation_bps)
    alone = reach(config.policy, people=1)
    drift = alone.loss(wallet) * deviation / _BPS
    return Scenario(
        "oracle-manipulation", "Oracle price manipulation", "Medium (3%)", wallet,
        "2+ independent sources, staleness and deviation checks, signed price floors",
        wallet if flags else drift,
        "prices can be understated without bound" if flags else
        f"drift within {deviation} bps of a {format_usd(alone.loss(wallet))} USD limit",
        tuple(flags))


def smart_contract_exploit(config: RiskConfig) -> Scenario:
    """Whitelisted contracts can still be exploited; simulation and a per-protocol
    circuit breaker stop the bleeding after at most one transaction."""
    wallet = config.wallet_value_usd
    contracts = [e for e in config.policy.address_book if e.kind is EntryKind.CONTRACT]
    flags: list[str] = []
    if contracts and not config.simulation_before_signing:
        flags.append("simulation before signing is off")
    for entry in contracts:
        if entry.protocol is None:
            flags.append(f'contract "{entry.label}" names no protocol, so no circuit breaker '
                         "covers it")
        elif entry.protocol not in config.circuit_breakers:
            flags.append(f'protocol "{entry.protocol}" (contract "{entry.label}") has no '
                         "circuit breaker")
    one_tx = max((lim.max_single_usd for lim in config.policy.limits), default=ZERO)
    potential = wallet if contracts else ZERO
    return Scenario(
        "smart-contract-exploit", "Smart contract exploit (whitelisted protocol)",
        "High (10% for new protocols)", potential,
        "selector whitelist, simulation before signing, per-protocol circuit breakers",
        wallet if flags else min(one_tx, potential),
        "no contract is whitelisted" if not contracts else
        "exploit goes undetected" if flags else "one transaction before the breaker trips",
        tuple(flags))


def unknown_destination(config: RiskConfig) -> Scenario:
    """Address poisoning or a malicious address-book addition: approval-free rules must
    not reach unknown addresses, and new entries wait out a cool-down."""
    wallet, cooldown = config.wallet_value_usd, config.policy.cooldown_seconds
    open_rules = reach(config.policy, people=1, where=_to_unvetted)
    flags = [f'rule "{r}" allows "{_destination(config, r)}" destinations without approvals'
             for r in (*open_rules.unbounded_rules, *open_rules.bounded_rules)]
    residual = open_rules.loss(wallet)
    if cooldown == 0:
        flags.append("address cool-down is 0: a new address-book entry is usable at once")
        residual = max(residual, reach(config.policy, people=1).loss(wallet))
    return Scenario(
        "unknown-destination", "Transfer to an attacker's address (poisoning, rogue entry)",
        "Medium (2%)", wallet,
        f"address book, {cooldown} s cool-down on new entries, approvals for unknown "
        "destinations", residual,
        "approval-free transfers can reach unvetted addresses" if flags
        else "unknown destinations need approvals", tuple(flags))


def admin_key_compromise(config: RiskConfig) -> Scenario:
    q, wallet = config.admin_quorum, config.wallet_value_usd
    flags = ("admin quorum 1: one stolen admin key signs a policy that allows anything",
             ) if q < 2 else ()
    return Scenario(
        "admin-key-compromise", "Stolen admin key (rogue policy bundle)", "Very low (0.2%)",
        wallet, f"policy bundles need {q} of {config.admins} admin signatures; nodes refuse "
        "downgrades", wallet if flags else ZERO,
        "one key rewrites the policy" if flags else "one key cannot sign a bundle", flags)


def raw_digest_signing(config: RiskConfig) -> Scenario:
    """DESIGN §4: raw-digest signing, if offered, needs the highest quorum, since the
    nodes cannot read (or value) what they sign."""
    wallet = config.wallet_value_usd
    rules = config.policy.rules
    raw = [r for r in rules if r.raw_digest and r.action is not Action.BLOCK]
    top = max((r for r in rules if not r.raw_digest), key=approvals_needed, default=None)
    highest = max(2, approvals_needed(top) if top is not None else 0)
    flags = []
    for rule in raw:
        needed = approvals_needed(rule)
        if needed < highest:
            flags.append(f'rule "{rule.name}" signs raw digests with {needed} approval(s), '
                         f"fewer than the highest quorum ({highest})")
    return Scenario(
        "raw-digest-signing", "Raw-digest signing of a disguised transaction", "Low (0.5%)",
        wallet if raw else ZERO,
        "raw digests only under the highest approval quorum",
        wallet if flags else ZERO,
        "no raw-digest rule" if not raw else
        "too few approvals for opaque digests" if flags else "highest quorum required",
        tuple(flags))


SCENARIOS: tuple[Callable[[RiskConfig], Scenario], ...] = (
    signer_node_compromise, trader_phishing, insider_collusion, coordinator_compromise,
    oracle_manipulation, smart_contract_exploit, unknown_destination, admin_key_compromise,
    raw_digest_signing,
)


def _to_unvetted(rule: Rule) -> bool:
    return rule.destination in (DestinationCondition.ANY, DestinationCondition.UNKNOWN) and (
        not rule.raw_digest)


def _destination(config: RiskConfig, name: str) -> str:
    return next(r.destination.value for r in config.policy.rules if r.name == name)


def _reach_note(found: Reach, cap: str) -> str:
    if not found.bounded:
        return "no 24 h cap"
    return f"capped by {cap}" if found.bounded_rules else "nothing reachable"
