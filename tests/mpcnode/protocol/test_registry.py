"""The protocol registry: every entry is complete, the wire names are the old ones, and
the node, its sessions, the coordinator, the transcript verifier and the simulator reach
every protocol through the registry, never by naming one.

The last test runs every registered protocol through three in-process signer nodes
(``SignerNode.start``/``round``, as the coordinator drives them) and verifies the
ceremony transcript they make; a new registry entry fails it until the entry is run.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import importlib
import importlib.util
import inspect
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from coordinator.ceremony_transcript import (
    Transcript,
    TranscriptMessage,
    TranscriptSession,
    close,
)
from coordinator.transcript_verify import verify
from mpcnode.core.params import DEFAULT_PROFILE, Profile
from mpcnode.crypto import codec
from mpcnode.daemon.node import SignerNode
from mpcnode.protocol.registry import (
    REGISTRY,
    ProtocolName,
    ProtocolSpec,
    UnknownProtocol,
    session_protocol,
)
from mpcnode.protocol.rounds import RoundName
from mpcnode.rpc import node_pb2 as pb
from mpcnode.state.node_store import NodeStore
from mpcnode.state.policy_state import PolicyState
from mpcnode.state.seal import Sealer
from mpcnode.transport.identity import IdentityKeys
from test_only.seeded_random import SeededRandom
from testing.protocol_harness import THREE, party_primes
from testing.store_material import KEK

SPECS = list(REGISTRY.values())

# What reaches a protocol through the registry, and so must never name one. The
# simulator builds each protocol's config in its run_* helpers, so it may import the
# protocol modules; the others may not.
CONSUMERS = ("mpcnode.daemon.node", "mpcnode.daemon.node_server", "mpcnode.transport.sessions",
             "coordinator.coordinator", "coordinator.transcript_verify",
             "coordinator.ceremony_transcript", "mpcnode.sim.simulator")
MAY_IMPORT_PROTOCOL_MODULES = {"mpcnode.sim.simulator"}


def _round_names() -> list[str]:
    return [rnd.name for spec in SPECS for rnd in spec.all_rounds]


# --- the entries ----------------------------------------------------------------------------


def test_every_session_protocol_has_one_entry() -> None:
    assert set(REGISTRY) == set(ProtocolName) - {ProtocolName.SIGN}
    for name, spec in REGISTRY.items():
        assert spec.name is name


def test_wire_names_are_unchanged() -> None:
    """Old transcripts and the proto fields carry these strings."""
    assert [str(n) for n in ProtocolName] == ["keygen", "aux_info", "presign", "refresh",
                                              "reshare", "sign"]
    assert sorted(_round_names()) == sorted([
        "keygen/1", "keygen/2", "keygen/3", "aux/1", "aux/2", "aux/3", "presign/1",
        "presign/2", "presign/3", "presign/identify", "refresh/1", "refresh/2", "refresh/3",
        "reshare/1", "reshare/2", "reshare/3"])


def test_round_names_are_unique_and_owned_by_their_module() -> None:
    names = _round_names()
    assert len(names) == len(set(names))
    for spec in SPECS:
        [enum] = {type(rnd.name) for rnd in spec.all_rounds}  # one enum per protocol
        assert issubclass(enum, RoundName)
        assert enum.__module__ == spec.start.__module__
        assert set(enum) == {rnd.name for rnd in spec.all_rounds}  # each one is run
        assert repr(next(iter(enum))) == repr(str(next(iter(enum))))  # quoted as on the wire


@pytest.mark.parametrize("spec", SPECS, ids=lambda spec: spec.name.value)
def test_every_entry_is_complete(spec: ProtocolSpec[object, object, object]) -> None:
    assert spec.rounds
    for fn in (spec.configure, spec.session_id, spec.start, spec.public_result):
        assert callable(fn)
    for rnd in spec.all_rounds:
        assert dataclasses.is_dataclass(rnd.broadcast)
        assert rnd.direct is None or dataclasses.is_dataclass(rnd.direct)
        assert rnd.direct is not None or not rnd.direct_secret
    assert isinstance(spec.output, type)
    assert dataclasses.is_dataclass(spec.result_type)
    if spec.recovery is not None:
        assert issubclass(spec.recovery.failure, Exception) and callable(spec.recovery.start)
        assert spec.recovery.disclosed_round in {rnd.name for rnd in spec.rounds}
    if spec.ceremony is not None:
        assert callable(spec.ceremony.key_after) and callable(spec.ceremony.result)


@pytest.mark.parametrize("spec", SPECS, ids=lambda spec: spec.name.value)
def test_every_round_has_the_one_interface(spec: ProtocolSpec[object, object, object]) -> None:
    """Each round state of the protocol's module: ``receive(inbound, rng)``, one per round."""
    module = importlib.import_module(spec.start.__module__)
    states = [c for c in vars(module).values() if isinstance(c, type)
              and c.__module__ == module.__name__ and hasattr(c, "receive")]
    assert len(states) == len(spec.rounds)
    recovery = [spec.recovery.start.__module__] if spec.recovery else []
    for state in states + [s for m in recovery for s in _states(m)]:
        assert list(inspect.signature(state.receive).parameters) == ["self", "inbound", "rng"]


def _states(module_name: str) -> Iterator[type]:
    module = importlib.import_module(module_name)
    for c in vars(module).values():
        if isinstance(c, type) and c.__module__ == module_name and hasattr(c, "receive"):
            yield c


@pytest.mark.parametrize("name", ["redistribute", "KEYGEN", "keygen/1", "", "sign"])
def test_a_name_without_a_session_protocol_is_refused(name: str) -> None:
    with pytest.raises(UnknownProtocol):
        session_protocol(name)


# --- nothing names a protocol but the registry ---------------------------------------------


def _tree(module: str) -> ast.Module:
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin is not None
    return ast.parse(Path(spec.origin).read_text())


@pytest.mark.parametrize("module", CONSUMERS)
def test_consumers_name_no_protocol_and_no_round(module: str) -> None:
    names = {str(n) for n in ProtocolName} | set(_round_names())
    literals = {n.value for n in ast.walk(_tree(module))
                if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    assert not names & literals


@pytest.mark.parametrize("module", sorted(set(CONSUMERS) - MAY_IMPORT_PROTOCOL_MODULES))
def test_consumers_import_no_protocol_module(module: str) -> None:
    protocol_modules = {spec.start.__module__ for spec in SPECS}
    imported = set()
    for n in ast.walk(_tree(module)):
        if isinstance(n, ast.Import):
            imported |= {a.name for a in n.names}
        elif isinstance(n, ast.ImportFrom) and n.module:
            imported |= {n.module} | {f"{n.module}.{a.name}" for a in n.names}
    assert not imported & protocol_modules


# --- every protocol through the node and the verifier --------------------------------------


@dataclass
class Nodes:
    """Three signer nodes in one process, relayed like the coordinator relays them."""

    nodes: dict[int, SignerNode]
    sessions: list[TranscriptSession] = field(default_factory=list)
    nonces: int = 0

    def run(self, protocol: ProtocolName, parties: tuple[int, ...] = THREE, *,
            threshold: int = 0, key_id: bytes = b"", path: tuple[int, ...] = (),
            profile: str = "", epoch: int = 0, new_parties: tuple[int, ...] = ()) -> bytes:
        """One session of ``protocol`` by its wire name; the result every node reports."""
        self.nonces += 1
        nonce = b"registry/%d" % self.nonces
        nonce = nonce.ljust(32, b"\0")
        req = pb.StartSessionRequest(protocol=protocol.value, nonce=nonce, parties=list(parties),
                                     threshold=threshold, key_id=key_id, path=list(path),
                                     profile=profile, epoch=epoch, new_parties=new_parties)
        responses = {i: self.nodes[i].start(req) for i in parties}
        relayed: list[pb.Envelope] = []
        while not all(r.done for r in responses.values()):
            out = {i: list(r.outbound) for i, r in responses.items()}
            relayed += [e for envs in out.values() for e in envs if e.recipient == 0]
            responses = {i: self.nodes[i].round(pb.RoundRequest(nonce=nonce, inbound=[
                e for j, envs in out.items() if j != i for e in envs if e.recipient in (0, i)]))
                for i in parties}
        disclosed = [e for r in responses.values() for e in r.disclosed]
        [sid] = {r.session_id for r in responses.values()}
        self.sessions.append(TranscriptSession(
            protocol, nonce, sid, parties,
            {"threshold": threshold, "key_id": key_id.hex(), "path": list(path),
             "profile": profile, "epoch": epoch,
             **({"new_parties": list(new_parties)} if new_parties else {})},
            tuple(TranscriptMessage.from_envelope(e) for e in [*relayed, *disclosed]),
            {i: r.result.decode() for i, r in responses.items()}))
        results = {r.result for r in responses.values()}
        assert len(results) == 1 or not REGISTRY[protocol].results_agree
        return responses[parties[0]].result


def _primes_of(party: int, _profile: Profile) -> tuple[int, int]:
    return party_primes(party)


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[Nodes]:
    keys = {i: IdentityKeys.generate(i) for i in THREE}
    admin = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw,
                                                                  PublicFormat.Raw)
    made = {}
    for i in THREE:
        store = NodeStore(tmp_path / f"node{i}", Sealer(KEK))
        policy = PolicyState(tmp_path / f"node{i}", {"admin": admin}, 1)
        policy.attach(store)
        made[i] = SignerNode(i, keys[i], {j: k.public for j, k in keys.items()}, store,
                             functools.partial(_primes_of, i),
                             SeededRandom(b"registry/node%d" % i), threshold=2,
                             policy=policy)
    yield Nodes(made)
    for node in made.values():
        node.store.close()
        node.policy.close()


def test_every_protocol_runs_through_the_node_and_the_verifier(nodes: Nodes) -> None:
    keygen = REGISTRY[ProtocolName.KEYGEN]
    key = codec.from_bytes(keygen.result_type, nodes.run(ProtocolName.KEYGEN, threshold=2))
    nodes.run(ProtocolName.AUX_INFO, key_id=key.key_id, profile=DEFAULT_PROFILE.name)
    nodes.run(ProtocolName.PRESIGN, (1, 3), key_id=key.key_id)
    assert nodes.nodes[1].store.count_available(key.key_id) == {(1, 3): 1}
    nodes.run(ProtocolName.REFRESH, key_id=key.key_id)
    assert nodes.nodes[1].store.count_available(key.key_id) == {}  # made with old shares
    nodes.run(ProtocolName.PRESIGN, (1, 3), key_id=key.key_id, epoch=1)
    nodes.run(ProtocolName.RESHARE, key_id=key.key_id, epoch=1, threshold=2, new_parties=THREE)
    assert nodes.nodes[1].store.count_available(key.key_id) == {}  # made with old shares
    assert {s.protocol for s in nodes.sessions} == set(REGISTRY)  # a new entry: run it here

    ceremony = tuple(s for s in nodes.sessions if REGISTRY[s.protocol].ceremony is not None)
    open_transcript = Transcript("registry", 2,
                                 {i: n.keys.public for i, n in nodes.nodes.items()},
                                 key.key_id, key.public_key.to_bytes(), ceremony)
    proved = verify(close(open_transcript, {i: n.close_transcript(key.key_id)
                                            for i, n in nodes.nodes.items()}))
    assert (proved.key_id, proved.public_key, proved.epoch) == (key.key_id, key.public_key, 2)

    with pytest.raises(UnknownProtocol, match="unknown protocol 'redistribute'"):
        nodes.nodes[1].start(pb.StartSessionRequest(protocol="redistribute", nonce=b"n" * 32,
                                                    parties=list(THREE)))
