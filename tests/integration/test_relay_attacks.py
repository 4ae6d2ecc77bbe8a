"""A malicious coordinator (relay) against real signer nodes over mutual-TLS gRPC.

The relay sees every envelope; it must not be able to change one, move one into another
session, round or recipient, or show different broadcasts to different nodes without the
session aborting and (where the transport can tell) naming the coordinator, culprit 0.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from coordinator.coordinator import Coordinator, SessionAbortedError
from coordinator.node_client import NodeClient
from mpcnode.ceremony.cluster_file import load_coordinator_config
from mpcnode.ceremony.node_config import load_identity_keys
from mpcnode.crypto import codec
from mpcnode.crypto.group import Q
from mpcnode.protocol import keygen
from mpcnode.protocol.sign import rerandomize
from mpcnode.rpc import node_pb2 as pb
from mpcnode.transport import envelope
from test_only.node_switches import load_test_node_config
from testing.cluster_harness import in_process_cluster

T = TypeVar("T")
Attack = Callable[[str, int, list[pb.Envelope]], list[pb.Envelope]]
PARTIES = (1, 2, 3)
THRESHOLD = 3  # a signer set has exactly t parties: presign needs all three
SIGNERS = (1, 2, 3)  # presign with all three: every node sends and gets direct messages


class EvilCoordinator(Coordinator):
    """Relays through ``attack``; remembers what it relayed and every node's last outbound."""

    def __init__(self, root: Path, attack: Attack | None = None) -> None:
        super().__init__(load_coordinator_config(root), timeout=60.0)
        self.attack = attack
        self.relayed: list[tuple[int, pb.Envelope]] = []  # (recipient, envelope), honest view
        self.outbound: dict[int, list[pb.Envelope]] = {}
        self._record = threading.Lock()

    def _parallel(self, parties: Iterable[int], fn: Callable[[NodeClient], T]) -> dict[int, T]:
        out = super()._parallel(parties, fn)
        outbound = {i: list(r.outbound) for i, r in out.items() if isinstance(r, pb.RoundResponse)}
        if out and len(outbound) == len(out):
            self.outbound = outbound
        return out

    def relay(self, protocol: str, recipient: int, inbound: list[pb.Envelope]
              ) -> list[pb.Envelope]:
        with self._record:
            self.relayed.extend((recipient, copy(e)) for e in inbound)
        return self.attack(protocol, recipient, inbound) if self.attack else inbound

    def recorded(self, round_name: str, sender: int, recipient: int) -> pb.Envelope:
        """An envelope this relay passed on (recipient 0: a broadcast)."""
        for _to, e in self.relayed:
            if (e.round, e.sender, e.recipient) == (round_name, sender, recipient):
                return e
        raise AssertionError(f"no {round_name} message {sender}→{recipient} was relayed")


@dataclass
class Setup:
    root: Path
    key_id: bytes
    honest: Coordinator

    def evil(self, attack: Attack | None = None) -> EvilCoordinator:
        return EvilCoordinator(self.root, attack)

    def key_counts(self) -> dict[int, int]:
        return {i: len(c.info().keys) for i, c in self.honest.clients.items()}


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    root = tmp_path_factory.mktemp("relay") / "cluster"
    with in_process_cluster(root, len(PARTIES), THRESHOLD) as honest:
        key, _ = honest.keygen()
        honest.aux_info(key.key_id)  # once: presign needs it
        yield Setup(root, key.key_id, honest)


# --------------------------------------------------------------------------- helpers


def copy(e: pb.Envelope) -> pb.Envelope:
    out = pb.Envelope()
    out.CopyFrom(e)
    return out


def flipped(e: pb.Envelope, field: str = "body", index: int = 5) -> pb.Envelope:
    out = copy(e)
    raw = bytearray(getattr(out, field))
    raw[index % len(raw)] ^= 0x01
    setattr(out, field, bytes(raw))
    return out


def replace_where(inbound: list[pb.Envelope], round_name: str, sender: int, recipient: int,
                  new: Callable[[pb.Envelope], pb.Envelope | None]) -> list[pb.Envelope]:
    """``inbound`` with the (round, sender, recipient) envelope replaced by ``new(e)``
    (dropped if None); the envelope must be there."""
    out, hit = [], False
    for e in inbound:
        if (e.round, e.sender, e.recipient) == (round_name, sender, recipient):
            hit = True
            repl = new(e)
            if repl is not None:
                out.append(repl)
        else:
            out.append(e)
    assert hit, f"no {round_name} message {sender}→{recipient} in this relay"
    return out


def at(round_name: str, target: int, sender: int, recipient: int,
       new: Callable[[pb.Envelope], pb.Envelope | None]) -> Attack:
    """Attack only node ``target``'s inbound of ``round_name``."""

    def attack(protocol: str, to: int, inbound: list[pb.Envelope]) -> list[pb.Envelope]:
        if to == target and any(e.round == round_name for e in inbound):
            return replace_where(inbound, round_name, sender, recipient, new)
        return inbound

    return attack


def aborted(run: Callable[[], Any]) -> SessionAbortedError:
    with pytest.raises(SessionAbortedError) as exc:
        run()
    return exc.value


def run_keygen(s: Setup, attack: Attack) -> SessionAbortedError:
    before = s.key_counts()
    with s.evil(attack) as evil:
        err = aborted(lambda: evil.keygen(threshold=THRESHOLD))
    assert s.key_counts() == before, "an aborted keygen must not leave a key share behind"
    return err


def run_presign(s: Setup, attack: Attack) -> SessionAbortedError:
    with s.evil(attack) as evil:
        return aborted(lambda: evil.presign(s.key_id, SIGNERS))


# --------------------------------------------------------------------------- tampering


def test_tampered_broadcast_is_blamed_on_the_coordinator(setup: Setup) -> None:
    err = run_keygen(setup, at("keygen/1", 2, 1, 0, flipped))
    assert err.culprit == 0
    assert "tampered" in err.reason and "party 1" in err.reason


@pytest.mark.parametrize("field", ["body", "ephemeral_key", "nonce", "signature"])
def test_tampered_direct_message_is_blamed_on_the_coordinator(setup: Setup, field: str) -> None:
    # Every part of a sealed direct message (here a keygen VSS share) is covered.
    err = run_keygen(setup, at("keygen/2", 3, 2, 3, lambda e: flipped(e, field)))
    assert err.culprit == 0
    assert "tampered" in err.reason and "party 2" in err.reason


def test_tampered_presign_direct_message_is_blamed_on_the_coordinator(setup: Setup) -> None:
    err = run_presign(setup, at("presign/1", 1, 3, 1, flipped))
    assert (err.culprit, "tampered" in err.reason) == (0, True)


def test_relabelled_recipient_is_blamed_on_the_coordinator(setup: Setup) -> None:
    # 1's share for 2, with its recipient field rewritten to 3, delivered to 3.
    def attack(protocol: str, to: int, inbound: list[pb.Envelope]) -> list[pb.Envelope]:
        if to != 3 or not any(e.round == "keygen/2" for e in inbound):
            return inbound
        [for_2] = [e for e in evil.outbound[1] if e.recipient == 2]
        relabelled = copy(for_2)
        relabelled.recipient = 3
        return replace_where(inbound, "keygen/2", 1, 3, lambda _e: relabelled)

    with setup.evil(attack) as evil:
        err = aborted(lambda: evil.keygen(threshold=THRESHOLD))
    assert (err.culprit, "tampered" in err.reason) == (0, True)


# --------------------------------------------------------------------------- replay


def test_replayed_broadcast_from_another_session(setup: Setup) -> None:
    with setup.evil() as recorder:
        recorder.keygen(threshold=THRESHOLD)  # an honest session, recorded
        old = recorder.recorded("keygen/1", 1, 0)
    err = run_keygen(setup, at("keygen/1", 3, 1, 0, lambda _e: old))
    assert err.culprit == 0
    assert "another session" in err.reason


def test_replayed_direct_message_from_another_session(setup: Setup) -> None:
    with setup.evil() as recorder:
        recorder.keygen(threshold=THRESHOLD)
        old = recorder.recorded("keygen/2", 1, 2)
    err = run_keygen(setup, at("keygen/2", 2, 1, 2, lambda _e: old))
    assert err.culprit == 0
    assert "another session" in err.reason


def test_message_replayed_into_a_later_round(setup: Setup) -> None:
    # Party 1's round-1 broadcast, in place of its round-2 broadcast, same session.
    def attack(protocol: str, to: int, inbound: list[pb.Envelope]) -> list[pb.Envelope]:
        if to == 2 and any(e.round == "keygen/2" for e in inbound):
            old = evil.recorded("keygen/1", 1, 0)
            return replace_where(inbound, "keygen/2", 1, 0, lambda _e: old)
        return inbound

    with setup.evil(attack) as evil:
        err = aborted(lambda: evil.keygen(threshold=THRESHOLD))
    assert err.culprit == 0
    assert "'keygen/1' message during round 'keygen/2'" in err.reason


def test_message_relayed_twice(setup: Setup) -> None:
    err = run_keygen(setup, _duplicate("keygen/1", 2, 3))
    assert err.culprit == 0
    assert "two keygen/1 messages of party 3" in err.reason


def _duplicate(round_name: str, target: int, sender: int) -> Attack:
    def attack(protocol: str, to: int, inbound: list[pb.Envelope]) -> list[pb.Envelope]:
        if to == target and any(e.round == round_name for e in inbound):
            [e] = [e for e in inbound if e.sender == sender and e.recipient == 0]
            return [*inbound, copy(e)]
        return inbound

    return attack


# --------------------------------------------------------------------------- misdelivery


def test_misaddressed_direct_message(setup: Setup) -> None:
    # 1's share for 2, delivered to 3 in place of 1's share for 3.
    def attack(protocol: str, to: int, inbound: list[pb.Envelope]) -> list[pb.Envelope]:
        if to != 3 or not any(e.round == "keygen/2" for e in inbound):
            return inbound
        [for_2] = [e for e in evil.outbound[1] if e.recipient == 2]
        return replace_where(inbound, "keygen/2", 1, 3, lambda _e: for_2)

    with setup.evil(attack) as evil:
        err = aborted(lambda: evil.keygen(threshold=THRESHOLD))
    assert err.culprit == 0
    assert "addressed to party 2 to party 3" in err.reason


# --------------------------------------------------------------------------- equivocation


def test_equivocation_with_a_modified_broadcast(setup: Setup) -> None:
    # Node 2 sees party 1's genuine round-1 broadcast (the honest relay does nothing to
    # it); node 3 sees a modified one.
    err = run_keygen(setup, at("keygen/1", 3, 1, 0, lambda e: flipped(e, "body", 20)))
    assert err.culprit == 0
    assert "tampered" in err.reason


def test_equivocation_with_another_sessions_broadcast(setup: Setup) -> None:
    # Node 2 sees party 1's genuine keygen/2 broadcast, node 3 the one party 1 made in
    # another keygen session: validly signed by party 1, but for the other session.
    with setup.evil() as recorder:
        recorder.keygen(threshold=THRESHOLD)
        other = recorder.recorded("keygen/2", 1, 0)
    err = run_keygen(setup, at("keygen/2", 3, 1, 0, lambda _e: other))
    assert err.culprit == 0
    assert "another session" in err.reason


def test_equivocation_signed_by_a_colluding_party_is_caught_by_the_echo(setup: Setup) -> None:
    # A relay holding party 1's identity key (a corrupted node 1) shows node 3 another,
    # validly signed round-1 commitment of party 1. The envelopes all verify; the
    # broadcast echo of the next round must catch the inconsistency.
    keys1 = load_identity_keys(load_test_node_config(setup.root / "node1" / "node.toml")[0])

    def other_commitment(e: pb.Envelope) -> pb.Envelope:
        msg = codec.from_bytes(keygen.Msg1, e.body)
        forged = keygen.Msg1(bytes(b ^ 0xFF for b in msg.V))
        return envelope.seal_broadcast(keys1, e.session_id, e.round, codec.to_bytes(forged))

    err = run_keygen(setup, at("keygen/1", 3, 1, 0, other_commitment))
    assert "broadcast inconsistency" in err.reason
    assert "keygen/1" in err.reason
    assert err.culprit in PARTIES


# --------------------------------------------------------------------------- dropping


def test_dropped_broadcast_names_the_missing_party(setup: Setup) -> None:
    err = run_keygen(setup, at("keygen/1", 2, 3, 0, lambda _e: None))
    assert err.culprit == 3
    assert "no keygen round-1 message received" in err.reason


def test_dropped_direct_message_names_the_missing_party(setup: Setup) -> None:
    err = run_keygen(setup, at("keygen/2", 1, 2, 1, lambda _e: None))
    assert err.culprit == 2
    assert "no keygen share message received" in err.reason


# --------------------------------------------------------------------------- afterwards


def test_nodes_still_work_after_the_attacks(setup: Setup) -> None:
    with setup.evil() as honest_relay:
        [public] = honest_relay.presign(setup.key_id, SIGNERS)
        assert public.signers == SIGNERS
        sig = honest_relay.sign(setup.key_id, b"\x07" * 32, healthy=SIGNERS)
        chain_code = honest_relay.key_info(setup.key_id).chain_code
    # The nonce point is the presignature's, re-randomized for this digest (R' = τ·R).
    assert sig.r == rerandomize(public, chain_code, (), b"\x07" * 32).r != public.R.x % Q
