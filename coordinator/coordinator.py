"""The coordinator: drives protocol sessions across signer nodes (DESIGN §1, §3).

It relays each round's envelopes between nodes (star topology) without being able to
read or forge them, picks a healthy t-subset for signing, keeps presignature pools
topped up, and verifies every combined signature before returning it. Any abort is
reported with its culprit: a node id, or ``coordinator`` for a relay fault. When nodes
name different culprits (a cheater blames someone else), the one most nodes name is
reported (``accusations``); a signature that does not verify runs the identification
step (``identification``).
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol, Self, TypeVar

import grpc

from coordinator.accusations import culprit_of, majority
from coordinator.coordinator_errors import CoordinatorError
from coordinator.identification import identify_bad_share, mta_transcript
from coordinator.node_client import NodeClient
from mpcnode.ceremony.cluster_file import CoordinatorConfig
from mpcnode.core.errors import ProtocolError, culprit_name
from mpcnode.core.params import DEFAULT_PROFILE
from mpcnode.crypto import bip32, codec
from mpcnode.crypto.group import Point
from mpcnode.protocol.presignature import PresignaturePublic
from mpcnode.protocol.registry import (
    AUX_INFO,
    KEYGEN,
    PRESIGN,
    REFRESH,
    REGISTRY,
    RESHARE,
    ProtocolName,
)
from mpcnode.protocol.results import AuxResult, KeygenResult, ReshareResult
from mpcnode.protocol.sign import (
    Signature,
    SignatureCheckError,
    SignatureShare,
    combine,
    rerandomize,
)
from mpcnode.rpc import node_pb2 as pb
from mpcnode.state.audit_witness_state import tree_head_to_proto
from mpcnode.transport.identity import IdentityPublic
from zero_trust import spend_quorum
from zero_trust.audit_tree.tree_head import SignedTreeHead

log = logging.getLogger("coordinator")
T = TypeVar("T")
ASSIGNMENTS_KEPT = 1024  # caller-named requests whose presignature is remembered
Progress = Callable[[str], None]



class AuditHeads(Protocol):
    """The OMS audit log as the nodes witness it (zero_trust/audit_tree/witness.py)."""

    def newest_head(self) -> SignedTreeHead:
        """A tree head over the whole log, signed now by the OMS audit key."""

    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes]:
        """The RFC 6962 proof that the log's first old_size entries are a prefix of its
        first new_size."""

class SigningRefused(CoordinatorError):  # noqa: N818 - the nodes' verdict
    """A signer node's own policy check refused the signature (DESIGN §4)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"a signer node refused to sign: {reason}")


class SessionAbortedError(CoordinatorError):
    """A protocol session aborted; ``culprit`` is the party id (0 = coordinator/relay)."""

    def __init__(self, protocol: ProtocolName, culprit: int | None, reason: str) -> None:
        self.protocol = protocol
        self.culprit = culprit
        self.reason = reason
        super().__init__(f"{protocol} aborted, culprit {culprit_name(culprit)}: {reason}")


@dataclass
class SessionRecord:
    """Everything public about one finished session: the ceremony transcript's unit."""

    protocol: ProtocolName
    nonce: bytes
    session_id: bytes
    parties: tuple[int, ...]
    params: dict[str, Any]
    envelopes: list[pb.Envelope] = field(default_factory=list)  # broadcasts as relayed
    disclosed: list[pb.Envelope] = field(default_factory=list)  # direct, disclosed at the end
    results: dict[int, bytes] = field(default_factory=dict)  # each node's public result


_culprit_of = culprit_of


def _aborted(protocol: ProtocolName, failed: dict[int, grpc.RpcError]) -> SessionAbortedError:
    """The abort of a round in which some nodes failed: the culprit the most ABORTED
    nodes name; without any such, the first node's error as it was."""
    aborted = {i: e for i, e in sorted(failed.items())
               if e.code() == grpc.StatusCode.ABORTED}
    verdict = majority({i: [culprit_of(e)] for i, e in aborted.items()})
    if verdict.culprit is None:
        first = aborted[min(aborted)] if aborted else failed[min(failed)]
        return SessionAbortedError(protocol, culprit_of(first), str(first.details()))
    reason = str(aborted[verdict.votes[verdict.culprit][0]].details())
    if not verdict.unanimous or verdict.tie:
        reason = f"{reason} ({verdict.summary()})"
    return SessionAbortedError(protocol, verdict.culprit, reason)


@dataclass(frozen=True)
class Assignment:
    """Which presignature (and so which signer set) serves one attempt of a request."""

    attempt: int
    digest: bytes
    path: tuple[int, ...]
    public: PresignaturePublic
    # The presign/2 messages of the presignature's session, when this coordinator ran it:
    # kept so that a bad signature share found after a restart is still identified.
    transcript: tuple[pb.Envelope, ...] | None = None


class AssignmentStore(Protocol):
    """Where a caller keeps request → assignment durably (the OMS: its database).

    ``save`` must be durable when it returns: the coordinator calls it before any node is
    asked, so that after a crash the same request is retried with the same presignature
    and attempt, and every node answers with the σ_i it already released instead of
    leaving the request half-signed with its presignature burnt."""

    def load(self, key_id: bytes, request_id: str) -> Assignment | None: ...

    def save(self, key_id: bytes, request_id: str, assignment: Assignment) -> None: ...


class Coordinator:
    def __init__(self, config: CoordinatorConfig, *, timeout: float = 300.0,
                 assignments: AssignmentStore | None = None) -> None:
        self.config = config
        self.assignments = assignments
        self.threshold = config.cluster.threshold
        ca, cert, key = (config.ca.read_bytes(), config.cert.read_bytes(),
                         config.key.read_bytes())
        self.clients = {i: NodeClient(e, ca, cert, key, timeout)
                        for i, e in sorted(config.cluster.nodes.items())}
        self._pool = ThreadPoolExecutor(max_workers=max(4, 2 * len(self.clients)))
        self._lock = threading.Lock()
        # Ready presignatures by (key id, signer set), oldest first: one pool per signer
        # set serves every derivation path (they are re-randomized at signing).
        self._ready: dict[tuple[bytes, tuple[int, ...]], list[PresignaturePublic]] = {}
        self._roots: dict[bytes, tuple[Point, bytes]] = {}  # root key, chain code
        self._thresholds: dict[bytes, int] = {}
        # The presign/2 messages of each ready presignature, by its id: what the
        # identification step needs if a signature made from it does not verify.
        self._transcripts: dict[bytes, list[pb.Envelope]] = {}
        # The last attempt of each request id (most recent ones), with its digest, path
        # and presignature: a repeat of the request (the caller timed out, say) reuses
        # the presignature, so every node answers with the σ_i it already released and
        # the repeat gets the same signature; another digest under the same id gets the
        # next attempt number, which no node has answered yet.
        self._assigned: OrderedDict[tuple[bytes, str], _Assignment] = OrderedDict()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        for c in self.clients.values():
            c.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- plumbing ---------------------------------------------------------------------------

    def _parallel(self, parties: Iterable[int], fn: Callable[[NodeClient], T]) -> dict[int, T]:
        futures = {i: self._pool.submit(fn, self.clients[i]) for i in parties}
        return {i: f.result() for i, f in futures.items()}

    def _attempt_all(self, parties: Iterable[int], fn: Callable[[NodeClient], T]
                     ) -> dict[int, T | grpc.RpcError]:
        """Like ``_parallel``, but a node's gRPC error is its answer, not an exception."""

        def attempt(c: NodeClient) -> T | grpc.RpcError:
            try:
                return fn(c)
            except grpc.RpcError as exc:
                return exc

        return self._parallel(parties, attempt)

    def _round_at(self, protocol: ProtocolName, parties: Iterable[int],
                  fn: Callable[[NodeClient], pb.RoundResponse]) -> dict[int, pb.RoundResponse]:
        """Every node's answer to one step of a session; if any failed, every node's
        failure counts for the culprit reported."""
        got = self._attempt_all(parties, fn)
        failed = {i: r for i, r in got.items() if not isinstance(r, pb.RoundResponse)}
        if failed:
            raise _aborted(protocol, failed)
        return {i: r for i, r in got.items() if isinstance(r, pb.RoundResponse)}

    def healthy(self) -> list[int]:
        status = self._parallel(self.clients, lambda c: c.healthy())
        return [i for i, ok in sorted(status.items()) if ok]

    def run_session(self, protocol: ProtocolName, parties: Sequence[int], *, threshold: int = 0,
                    key_id: bytes = b"", path: Sequence[int] = (), profile: str = "",
                    new_parties: Sequence[int] = (),
                    progress: Progress | None = None) -> SessionRecord:
        """Start ``protocol`` at ``parties`` and relay rounds until every node is done.
        A session of an existing key names the epoch of its shares, as the nodes report
        it: each node refuses a session for any other epoch."""
        parties = tuple(sorted(parties))
        nonce = secrets.token_bytes(32)
        epoch = int(self.key_info(key_id).epoch) if key_id else 0
        req = pb.StartSessionRequest(protocol=protocol.value, nonce=nonce, parties=list(parties),
                                     threshold=threshold, key_id=key_id, path=list(path),
                                     profile=profile, epoch=epoch, new_parties=list(new_parties))
        say = progress or (lambda _msg: None)
        params: dict[str, Any] = {"threshold": threshold, "key_id": key_id.hex(),
                                  "path": list(path), "profile": profile, "epoch": epoch}
        if new_parties:  # a reshare's new committee; other sessions' records stay as they were
            params["new_parties"] = list(new_parties)
        record = SessionRecord(protocol, nonce, b"", parties, params)
        try:
            say(f"{protocol}: starting at nodes {list(parties)}")
            responses = self._round_at(protocol, parties, lambda c: c.start(req))
            sids = {r.session_id for r in responses.values()}
            if len(sids) != 1:
                raise SessionAbortedError(protocol, None, "nodes disagree on the session id")
            record.session_id = sids.pop()
            rnd = 1
            while not all(r.done for r in responses.values()):
                outbound = {i: list(r.outbound) for i, r in responses.items()}
                record.envelopes.extend(e for envs in outbound.values() for e in envs
                                        if e.recipient == 0)
                say(f"{protocol}: round {rnd} relayed")

                def deliver(c: NodeClient, outbound: dict[int, list[pb.Envelope]] = outbound
                            ) -> pb.RoundResponse:
                    inbound = [e for j, envs in outbound.items() if j != c.party
                               for e in envs if e.recipient in (0, c.party)]
                    inbound = self.relay(protocol, c.party, inbound)
                    return c.round(pb.RoundRequest(nonce=nonce, inbound=inbound))

                responses = self._round_at(protocol, parties, deliver)
                rnd += 1
        except grpc.RpcError as exc:
            self._abort_all(parties, nonce, str(exc.details()))
            raise SessionAbortedError(protocol, _culprit_of(exc), str(exc.details())) from exc
        except SessionAbortedError as exc:
            self._abort_all(parties, nonce, str(exc))
            raise
        for i, r in responses.items():
            record.results[i] = r.result
            record.disclosed.extend(r.disclosed)
        if REGISTRY[protocol].results_agree and len(set(record.results.values())) != 1:
            raise SessionAbortedError(protocol, None, "nodes report different results")
        say(f"{protocol}: done")
        return record

    def relay(self, protocol: ProtocolName, recipient: int, inbound: list[pb.Envelope]
              ) -> list[pb.Envelope]:
        """The envelopes handed to ``recipient`` this round. The honest relay passes them
        through; tests subclass this to play a malicious coordinator."""
        return inbound

    def _abort_all(self, parties: Iterable[int], nonce: bytes, reason: str) -> None:
        self._parallel(parties, lambda c: c.abort(nonce, reason))

    # --- key lifecycle ----------------------------------------------------------------------

    def keygen(self, *, threshold: int | None = None, parties: Sequence[int] | None = None,
               progress: Progress | None = None) -> tuple[KeygenResult, SessionRecord]:
        t = threshold or self.threshold
        ps = tuple(parties or self.clients)
        rec = self.run_session(KEYGEN.name, ps, threshold=t, progress=progress)
        return codec.from_bytes(KEYGEN.result_type, next(iter(rec.results.values()))), rec

    def aux_info(self, key_id: bytes, *, parties: Sequence[int] | None = None,
                 profile: str = "", progress: Progress | None = None
                 ) -> tuple[AuxResult, SessionRecord]:
        ps = tuple(parties or self.clients)
        # Name the profile explicitly, so the transcript records what the nodes used.
        rec = self.run_session(AUX_INFO.name, ps, key_id=key_id,
                               profile=profile or DEFAULT_PROFILE.name, progress=progress)
        return codec.from_bytes(AUX_INFO.result_type, next(iter(rec.results.values()))), rec

    def refresh(self, key_id: bytes, *, progress: Progress | None = None
                ) -> tuple[KeygenResult, list[SessionRecord]]:
        """Proactive refresh (new shares, same key), then fresh Paillier keys."""
        parties = self.key_info(key_id).parties
        rec = self.run_session(REFRESH.name, parties, key_id=key_id, progress=progress)
        result = codec.from_bytes(REFRESH.result_type, next(iter(rec.results.values())))
        _, aux_rec = self.aux_info(key_id, parties=parties, progress=progress)
        return result, [rec, aux_rec]

    def reshare(self, key_id: bytes, new_parties: Sequence[int], threshold: int, *,
                progress: Progress | None = None) -> tuple[ReshareResult, list[SessionRecord]]:
        """Move the key to ``new_parties`` with threshold ``threshold`` (reshare.py): every
        healthy old holder deals (at least t are needed), then the new committee makes
        fresh Paillier keys. Old holders that are down keep shares of a retired epoch."""
        info = self.key_info(key_id)
        up = set(self.healthy())
        dealers = [i for i in info.parties if i in up]
        missing = sorted(set(new_parties) - up)
        if missing:
            raise CoordinatorError(f"new committee members {missing} are not healthy")
        if len(dealers) < info.threshold:
            raise CoordinatorError(f"only {len(dealers)} old holders ({dealers}) are healthy; "
                                   f"the key needs t = {info.threshold} to reshare")
        parties = sorted(set(dealers) | set(new_parties))
        rec = self.run_session(RESHARE.name, parties, threshold=threshold, key_id=key_id,
                               new_parties=sorted(new_parties), progress=progress)
        result = codec.from_bytes(RESHARE.result_type, next(iter(rec.results.values())))
        _, aux_rec = self.aux_info(key_id, parties=sorted(new_parties), progress=progress)
        return result, [rec, aux_rec]

    def close_transcript(self, key_id: bytes, parties: Sequence[int] | None = None
                         ) -> dict[int, pb.CloseTranscriptResponse]:
        """Every key holder's signed list of the key's ceremony sessions: a transcript's
        closing record (``ceremony_transcript.close``); ``parties`` default to every node."""
        return self._parallel(parties or self.clients, lambda c: c.close_transcript(key_id))

    def key_info(self, key_id: bytes) -> pb.KeyInfo:
        for i in self.healthy():
            for k in self.clients[i].info().keys:
                if k.key_id == key_id:
                    found: pb.KeyInfo = k
                    return found
        raise CoordinatorError(f"no healthy node holds key {key_id.hex()}")

    # --- presignatures and signing ----------------------------------------------------------

    def presign(self, key_id: bytes, signers: Sequence[int], count: int = 1
                ) -> list[PresignaturePublic]:
        """Run ``count`` presigning sessions; their public parts join the signer set's
        pool, which serves every derivation path."""
        out = []
        signers = tuple(sorted(signers))
        for _ in range(count):
            rec = self.run_session(PRESIGN.name, signers, key_id=key_id)
            publics = {i: codec.from_bytes(PRESIGN.result_type, r)
                       for i, r in rec.results.items()}
            _check_same_presignature(publics)
            public = publics[signers[0]]
            try:
                transcript = mta_transcript(signers, rec.session_id, rec.disclosed,
                                            self._identities())
            except ProtocolError as exc:  # never used: a cheat could not be pinned on anyone
                raise SessionAbortedError(PRESIGN.name, exc.culprit, exc.reason) from exc
            with self._lock:
                self._transcripts[public.session] = transcript
                self._ready.setdefault((key_id, signers), []).append(public)
            out.append(public)
        return out

    def pool_level(self, key_id: bytes, signers: Sequence[int]) -> int:
        """Ready presignatures of one signer set (for every path)."""
        with self._lock:
            return len(self._ready.get((key_id, tuple(sorted(signers))), []))

    def sync_pool(self, key_id: bytes) -> int:
        """Rebuild the local pool from the nodes (after a coordinator restart): a
        presignature is usable when every signer of its set still holds it unused."""
        infos = self._parallel(self.healthy(), lambda c: c.info())
        held: dict[tuple[int, ...], dict[bytes, int]] = {}
        for info in infos.values():
            for k in info.keys:
                if k.key_id == key_id:
                    for lvl in k.pool:
                        ids = held.setdefault(tuple(lvl.signers), {})
                        for pid in lvl.ids:
                            ids[pid] = ids.get(pid, 0) + 1
        added = 0
        with self._lock:
            for signers, ids in held.items():
                queue = self._ready.setdefault((key_id, signers), [])
                known = {p.session for p in queue}
                for pid, n in ids.items():
                    if n == len(signers) and pid not in known:
                        raw = self.clients[signers[0]].presignature_info(pid).public
                        queue.append(codec.from_bytes(PresignaturePublic, raw))
                        added += 1
        return added

    def _take_presignature(self, key_id: bytes, healthy: set[int]
                           ) -> PresignaturePublic | None:
        """The oldest ready presignature of a healthy signer set, whatever the path."""
        with self._lock:
            for (kid, signers), queue in self._ready.items():
                if kid == key_id and queue and set(signers) <= healthy:
                    return queue.pop(0)
        return None

    def pick_signers(self, key_id: bytes, healthy: Sequence[int]) -> tuple[int, ...]:
        t = self.key_threshold(key_id)
        if len(healthy) < t:
            raise CoordinatorError(f"only {len(healthy)} signer nodes are healthy; "
                                   f"t = {t} are needed")
        return tuple(sorted(healthy)[:t])

    def key_threshold(self, key_id: bytes) -> int:
        with self._lock:
            t = self._thresholds.get(key_id)
        if t is None:
            t = int(self.key_info(key_id).threshold)
            with self._lock:
                self._thresholds[key_id] = t
        return t

    def install_policy(self, bundle_json: bytes, parties: Sequence[int] | None = None
                       ) -> dict[int, pb.InstallPolicyResponse]:
        """Push a signed policy bundle to the nodes; each verifies the admin quorum itself."""
        return self._parallel(parties or self.clients,
                              lambda c: c.install_policy(bundle_json))

    def sign(self, key_id: bytes, digest: bytes, *, path: Sequence[int] = (),
             request_id: str | None = None, healthy: Sequence[int] | None = None,
             authorization: pb.Authorization | None = None,
             audit: AuditHeads | None = None) -> Signature:
        """Sign a 32-byte digest with a healthy t-subset; verified before it is returned.

        ``audit`` is the OMS audit log: each signer gets its newest signed tree head and the
        consistency proof from the head that signer witnessed last (``audit_witnesses``).

        ``authorization`` carries the transaction, policy hash and approvals from which
        every node decides for itself whether to release σ_i (DESIGN §4); nodes refuse a
        request without one unless a TEST ONLY setting says otherwise.

        Uses a ready presignature of a healthy signer set (one round trip to each
        signer), else presigns first. ``healthy`` skips the health probe when the caller
        (e.g. the pool keeper) already knows which nodes are up.
        """
        if len(digest) != 32:
            raise CoordinatorError("the digest must be 32 bytes")
        up = set(healthy if healthy is not None else self.healthy())
        request_id = request_id or secrets.token_hex(16)
        root, chain_code = self._key_root(key_id)
        derived = bip32.derive(root, chain_code, tuple(path))  # a bad path fails here
        prior = self._prior_assignment(key_id, request_id)
        next_attempt = prior.attempt + 1 if prior else 0
        receipts: list[pb.SignedStatement] = []
        views: list[pb.SignedStatement] = []
        if authorization is not None:
            receipts, views = self.record_and_read_spend(key_id, tuple(path), digest,
                                                       authorization, up)
        head = audit.newest_head() if audit is not None else None
        for n in range(2):
            if (n == 0 and prior is not None and (prior.digest, prior.path) == (digest, tuple(path))
                    and set(prior.public.signers) <= up):
                attempt, public, transcript = prior.attempt, prior.public, prior.transcript
            else:
                attempt, next_attempt = next_attempt, next_attempt + 1
                public = self._take_presignature(key_id, up) or self._fresh_presignature(
                    key_id, up)
                transcript = self._take_transcript(public.session)
                self._record_assignment(key_id, request_id, _Assignment(
                    attempt, digest, tuple(path), public, transcript))
            req = pb.SignRequest(key_id=key_id, path=list(path), digest=digest,
                                 presignature_id=public.session,
                                 request_id=f"{request_id}/{attempt}",
                                 authorization=authorization, spend_receipts=receipts,
                                 spend_views=views)
            witnesses = ({} if audit is None or head is None
                         else self.audit_witnesses(public.signers, audit, head))
            try:
                responses = self._sign_at(public.signers, req, witnesses)
                break
            except grpc.RpcError as exc:
                if exc.code() == grpc.StatusCode.PERMISSION_DENIED:
                    raise SigningRefused(str(exc.details())) from exc
                # A presignature some signer no longer has unused (another coordinator used
                # it, or a refresh retired it) is burnt: try one other.
                if exc.code() != grpc.StatusCode.FAILED_PRECONDITION or n:
                    raise SessionAbortedError(ProtocolName.SIGN, _culprit_of(exc),
                                              str(exc.details())) from exc
                log.warning("presignature %s unusable: %s", public.session.hex()[:16],
                            exc.details())
        shares = {i: SignatureShare(r.party, public.session, int.from_bytes(r.sigma, "big"))
                  for i, r in responses.items()}
        if public.public_key != root:
            raise CoordinatorError(f"presignature {public.session.hex()[:16]} was made for "
                                   "another root key")
        # The coordinator re-randomizes as every signer does: R' = τ·R, key X + e_P·G.
        rr = rerandomize(public, chain_code, tuple(path), digest, derived)
        try:
            return combine(public, shares, rr)
        except SignatureCheckError as exc:
            # CGGMP21 §4.3: every signer reopens χ_j, every signer checks the others.
            culprit, reason = identify_bad_share(
                self._attempt_all, public, req.request_id, digest, tuple(path),
                {i: r.sigma for i, r in responses.items()}, transcript, self._identities())
            raise SessionAbortedError(ProtocolName.SIGN, culprit, reason) from exc

    def record_and_read_spend(self, key_id: bytes, path: tuple[int, ...], digest: bytes,
                              auth: pb.Authorization, up: set[int]
                              ) -> tuple[list[pb.SignedStatement], list[pb.SignedStatement]]:
        """The spend recorded by a write quorum, then read by a read quorum
        (``zero_trust/spend_quorum.py``): what every signer needs before it releases σ_i,
        so that limits hold whichever signer subsets sign. Nodes that do not answer are
        replaced by other healthy ones; a node's refusal is the request's refusal."""
        n, t = len(self.clients), self.threshold
        reserve = pb.ReserveSpendRequest(key_id=key_id, path=list(path), digest=digest,
                                         authorization=auth)
        receipts = self._quorum_of(spend_quorum.write_quorum(n, t), up,
                                   lambda c: c.reserve_spend(reserve), "record the spend")
        read = pb.ReadSpendsRequest(
            key_id=key_id, digest=digest,
            request_id=auth.request_id, initiator=auth.initiator, receipts=receipts)
        views = self._quorum_of(t, up, lambda c: c.read_spends(read), "read the ledgers")
        return receipts, views

    def _quorum_of(self, size: int, up: set[int], fn: Callable[[NodeClient], T],
                   what: str) -> list[T]:
        """``fn`` answered by ``size`` distinct healthy nodes, asked in parallel (more
        asked when some fail to answer)."""
        answers: dict[int, T] = {}
        candidates = sorted(up)
        while len(answers) < size:
            ask = [i for i in candidates if i not in answers][:size - len(answers)]
            if not ask:
                raise CoordinatorError(f"only {len(answers)} healthy node(s) could {what}; "
                                       f"{size} are needed")
            candidates = [i for i in candidates if i not in ask or i in answers]
            for i, got in self._attempt_all(ask, fn).items():
                if not isinstance(got, grpc.RpcError):
                    answers[i] = got
                    continue
                if got.code() == grpc.StatusCode.PERMISSION_DENIED:
                    raise SigningRefused(str(got.details())) from got
                log.warning("node %d could not %s: %s", i, what, got.details())
                candidates.remove(i)
        return [answers[i] for i in sorted(answers)]

    # --- request → presignature assignments -------------------------------------------------

    def _prior_assignment(self, key_id: bytes, request_id: str) -> _Assignment | None:
        """The last attempt of ``request_id``: kept in memory, else in the caller's store
        (after a restart), with the presign transcript it was stored with."""
        with self._lock:
            prior = self._assigned.get((key_id, request_id))
        if prior is not None or self.assignments is None:
            return prior
        stored = self.assignments.load(key_id, request_id)
        if stored is None:
            return None
        return _Assignment(stored.attempt, stored.digest, stored.path, stored.public,
                           None if stored.transcript is None else list(stored.transcript))

    def _record_assignment(self, key_id: bytes, request_id: str, assignment: _Assignment
                           ) -> None:
        """Remember an attempt's presignature, durably first (``AssignmentStore``): no node
        is asked before the store has it."""
        if self.assignments is not None:
            self.assignments.save(key_id, request_id, Assignment(
                assignment.attempt, assignment.digest, assignment.path, assignment.public,
                None if assignment.transcript is None else tuple(assignment.transcript)))
        with self._lock:
            self._assigned[(key_id, request_id)] = assignment
            self._assigned.move_to_end((key_id, request_id))
            while len(self._assigned) > ASSIGNMENTS_KEPT:
                self._assigned.popitem(last=False)

    def _take_transcript(self, presig_id: bytes) -> list[pb.Envelope] | None:
        """The kept presign/2 messages of a presignature being used (None if this
        coordinator never saw its session: a pool rebuilt by ``sync_pool``)."""
        with self._lock:
            return self._transcripts.pop(presig_id, None)

    def _identities(self) -> dict[int, IdentityPublic]:
        return {i: e.identity for i, e in self.config.cluster.nodes.items()}

    def _fresh_presignature(self, key_id: bytes, up: set[int]) -> PresignaturePublic:
        public = self.presign(key_id, self.pick_signers(key_id, sorted(up)))[0]
        with self._lock:
            self._ready[(key_id, public.signers)].remove(public)
        return public

    def _key_root(self, key_id: bytes) -> tuple[Point, bytes]:
        """The key's root public key and BIP32 chain code, asked once of a node: a path's
        key is derived from them as every signer derives it."""
        with self._lock:
            known = self._roots.get(key_id)
        if known is None:
            info = self.key_info(key_id)
            if len(info.chain_code) != 32:
                raise CoordinatorError(f"the nodes report no chain code for key "
                                       f"{key_id.hex()}")
            known = (Point.from_bytes(info.public_key), bytes(info.chain_code))
            with self._lock:
                self._roots[key_id] = known
        return known

    def audit_witnesses(self, signers: Sequence[int], audit: AuditHeads,
                        head: SignedTreeHead) -> dict[int, pb.AuditWitness]:
        """Per signer: ``head`` and the RFC 6962 consistency proof from the head that signer
        reports it witnessed (one read-only call each, in parallel). A signer holding a
        head the log cannot extend gets none it could accept: that is for it to refuse."""
        held = self._parallel(signers, lambda c: c.witnessed_head())
        out: dict[int, pb.AuditWitness] = {}
        for i, answer in held.items():
            old = answer.head.tree_size if answer.HasField("head") else 0
            # Nothing to prove from no head or to the same size (RFC 6962 §2.1.2), and
            # nothing the log can prove to a node holding more than it has.
            proof = (audit.consistency_proof(old, head.tree_size)
                     if 0 < old < head.tree_size else [])
            out[i] = pb.AuditWitness(head=tree_head_to_proto(head), consistency_proof=proof)
        return out

    def _sign_at(self, signers: Sequence[int], req: pb.SignRequest,
                 witnesses: Mapping[int, pb.AuditWitness]) -> dict[int, pb.SignResponse]:
        """One Sign call to every signer at once: all but the last on the coordinator's
        worker threads, the last on this thread (a gRPC future starts a channel-polling
        thread per call: measured ~0.6 ms slower per signature); a transport failure is
        retried per node by the idempotent call. ``witnesses`` adds each signer's audit
        witness to its copy of the request."""
        def request_for(i: int) -> pb.SignRequest:
            if i not in witnesses:
                return req
            own = pb.SignRequest()
            own.CopyFrom(req)
            own.audit_witness.CopyFrom(witnesses[i])
            return own

        *others, last = signers
        futures = {i: self._pool.submit(self.clients[i].sign, request_for(i)) for i in others}
        own = self.clients[last].sign(request_for(last))
        out = {i: f.result() for i, f in futures.items()}
        out[last] = own
        return out

    # --- background pool keeper -------------------------------------------------------------

    def keep_pool(self, key_id: bytes, signers: Sequence[int], target: int = 4,
                  interval: float = 1.0) -> threading.Event:
        """Keep ``target`` presignatures ready for one signer set, in a background thread;
        set the returned event to stop it. The pool serves every derivation path."""
        stop = threading.Event()
        signers = tuple(sorted(signers))

        def loop() -> None:
            while not stop.is_set():
                try:
                    if self.pool_level(key_id, signers) < target:
                        self.presign(key_id, signers)
                        continue
                except (CoordinatorError, grpc.RpcError) as exc:
                    log.warning("pool top-up for %s failed: %s", signers, exc)
                stop.wait(interval)

        threading.Thread(target=loop, name=f"pool-{signers}", daemon=True).start()
        return stop


@dataclass(frozen=True)
class _Assignment:
    attempt: int
    digest: bytes
    path: tuple[int, ...]
    public: PresignaturePublic
    transcript: list[pb.Envelope] | None


def _check_same_presignature(publics: dict[int, PresignaturePublic]) -> None:
    """Every signer must hold the same public presignature (R, binding, session)."""
    ref = next(iter(publics.values()))
    for i, p in publics.items():
        if (p.R, p.binding, p.session, p.signers) != (ref.R, ref.binding, ref.session,
                                                      ref.signers):
            raise SessionAbortedError(PRESIGN.name, i, "node reports a different presignature")
