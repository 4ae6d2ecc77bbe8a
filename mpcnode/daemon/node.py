"""A signer node's behaviour behind its RPCs: sessions, key material, signing.

The gRPC layer (server.py) only authenticates and translates; everything a node
decides is here, on top of the pure protocol code, the envelope checks and the store.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ethereum.addresses import ethereum_address
from mpcnode.ceremony.prime_pool import take_primes
from mpcnode.core.errors import PresignatureError, UsageError
from mpcnode.core.params import Profile
from mpcnode.crypto import bip32, codec
from mpcnode.crypto.primes import generate_safe_prime
from mpcnode.crypto.random_source import RandomSource
from mpcnode.daemon import sign_identification
from mpcnode.protocol.key_share import AuxInfo, KeyShare, PublicKeyData, Reshared
from mpcnode.protocol.presignature import Presignature, PresignaturePublic
from mpcnode.protocol.registry import ProtocolName, session_protocol
from mpcnode.protocol.session_params import ClusterView, SessionParams, require_cluster_key
from mpcnode.protocol.sign import Rerandomized, SignatureShare, rerandomize, sign_share
from mpcnode.protocol.signer_set import SignerSet
from mpcnode.rpc import node_pb2 as pb
from mpcnode.state.audit_witness_state import AuditWitnessState, tree_head_to_proto
from mpcnode.state.ceremony_log import CeremonyLog
from mpcnode.state.node_store import NodeStore
from mpcnode.state.policy_state import PolicyState
from mpcnode.transport import ceremony_closing, identity
from mpcnode.transport.ceremony_closing import SessionRef
from mpcnode.transport.identity import IdentityKeys, IdentityPublic
from mpcnode.transport.sessions import Session, start_session
from mpcnode.transport.system_random import SystemRandom
from zero_trust import spend_quorum
from zero_trust.audit_tree.audit_tree_errors import WitnessRefused
from zero_trust.authorization import (
    AuthorizationDenied,
    SigningRequest,
    Verdict,
    signable,
)

SESSION_TIMEOUT_S = 600.0  # a session idle this long is dropped
PrimeSource = Callable[[Profile], tuple[int, int]]


def primes_from(pool: Path | None, rng: RandomSource) -> PrimeSource:
    """Where aux info gets its two safe primes: a pool file (never one marked TEST
    MATERIAL), else fresh generation."""

    def source(profile: Profile) -> tuple[int, int]:
        if pool is not None:
            return pool_pair(take_primes(pool, 2), profile)
        return (generate_safe_prime(profile.prime_bits, rng),
                generate_safe_prime(profile.prime_bits, rng))

    return source


def pool_pair(primes: list[int], profile: Profile) -> tuple[int, int]:
    """Two primes taken from a pool, refused unless they have the profile's size."""
    p, q = primes
    if p.bit_length() != profile.prime_bits:
        raise UsageError(f"prime pool holds {p.bit_length()}-bit primes, "
                         f"profile {profile.name} needs {profile.prime_bits}")
    return p, q


class UnauthorizedSigning(Protocol):
    """What a node does with a sign request that carries no authorization.

    A production node has none and refuses every such request (DESIGN §4). The one
    implementation, for the protocol-layer tests that predate zero-trust signing, is
    ``test_only.bare_digest_signing``; it gets the policy state so that it can keep the
    authorized path's lock order (policy, then store)."""

    def __call__(self, digest: bytes, policy: PolicyState,
                 sign: Callable[[bytes], SignatureShare]) -> SignatureShare: ...


@dataclass(frozen=True)
class _Holdings:
    """What a new session may take from this node (``session_params.Holdings``)."""

    store: NodeStore
    primes: PrimeSource
    cluster: ClusterView

    def get_key_share(self, key_id: bytes) -> KeyShare:
        return self.store.get_key_share(key_id)

    def get_key_public(self, key_id: bytes) -> PublicKeyData:
        return self.store.get_key_public(key_id)

    def get_aux_info(self, key_id: bytes) -> AuxInfo:
        return self.store.get_aux_info(key_id)

    def take_primes(self, profile: Profile) -> tuple[int, int]:
        return self.primes(profile)


class SignerNode:
    def __init__(self, party: int, keys: IdentityKeys, identities: dict[int, IdentityPublic],
                 store: NodeStore, primes: PrimeSource, rng: RandomSource | None = None, *,
                 threshold: int, policy: PolicyState, clock: Callable[[], float] = time.time,
                 unauthorized: UnauthorizedSigning | None = None,
                 witness: AuditWitnessState | None = None) -> None:
        """``identities`` are every node of the cluster and ``threshold`` its t, both from
        cluster.toml: every session's parameters are checked against them. ``witness``
        (when cluster.toml names the OMS audit key) makes every authorized sign request
        carry an audit tree head this node accepts."""
        if keys.public.party != party:
            raise UsageError("identity keys belong to another party")
        if not 1 <= threshold <= len(identities):
            raise UsageError(f"threshold {threshold} is not within 1..{len(identities)}")
        self.cluster = ClusterView(threshold, tuple(sorted(identities)))
        self.party = party
        self.policy = policy
        self.clock = clock
        self.unauthorized = unauthorized  # None in production: no bare digest is signed
        self.witness = witness
        self.keys = keys
        self.identities = identities
        self.store = store
        self.ceremony_log = CeremonyLog(store.data_dir)
        self.primes = primes
        self.rng = rng or SystemRandom()
        # Sessions of every protocol at once, so their outputs' types differ (Any).
        self._sessions: dict[bytes, tuple[Session[Any], threading.Lock, float]] = {}
        self._shares: dict[bytes, KeyShare] = {}
        self._signer_sets: dict[tuple[bytes, int, tuple[int, ...]], SignerSet] = {}
        self._derived: dict[tuple[bytes, tuple[int, ...]], bip32.DerivedKey] = {}
        self._lock = threading.Lock()

    # --- sessions -------------------------------------------------------------------------

    def start(self, req: pb.StartSessionRequest) -> pb.RoundResponse:
        """Start a session, refused unless every parameter is what this node's cluster.toml
        and key share say (DESIGN §2); the server has checked every field's size
        (``request_limits``). Only then is the nonce stored, so a refused request leaves
        nothing behind."""
        spec = session_protocol(req.protocol)  # the wire name; UnknownProtocol if none
        parties = tuple(req.parties)
        if self.party not in parties:
            raise UsageError(f"party {self.party} is not among the session's parties")
        unknown = set(parties) - set(self.identities)
        if unknown:
            raise UsageError(f"unknown parties {sorted(unknown)}")
        params = SessionParams(parties, req.nonce, req.threshold, req.key_id, tuple(req.path),
                               req.profile, req.epoch, tuple(req.new_parties))
        cfg = spec.configure(self.party, params,
                             _Holdings(self.store, self.primes, self.cluster))
        self.store.claim_session_nonce(req.nonce, spec.name.value)  # durable, atomic, forever
        peers = {j: self.identities[j] for j in parties if j != self.party}
        with self._lock:
            self._expire()
        session, out = start_session(spec, req.nonce, self.keys, peers, cfg, self.rng,
                                     req.key_id)
        with self._lock:
            self._sessions[req.nonce] = (session, threading.Lock(), time.monotonic())
        return pb.RoundResponse(session_id=session.session_id, outbound=out)

    def round(self, req: pb.RoundRequest) -> pb.RoundResponse:
        with self._lock:
            entry = self._sessions.get(req.nonce)
        if entry is None:
            raise UsageError("no such session (never started, finished, expired or aborted)")
        session, lock, _ = entry
        with lock:
            try:
                out = session.deliver(list(req.inbound), self.rng)
            except Exception:
                self._drop(req.nonce)  # an aborted session is never resumed
                raise
            if not session.done:
                self._touch(req.nonce)
                return pb.RoundResponse(session_id=session.session_id, outbound=out)
            self._drop(req.nonce)
            result = self._persist(session)
            return pb.RoundResponse(session_id=session.session_id, done=True, result=result,
                                    disclosed=session.disclosed)

    def protocol_of(self, nonce: bytes) -> str:
        with self._lock:
            entry = self._sessions.get(nonce)
        return entry[0].protocol if entry else "unknown"

    def abort(self, nonce: bytes) -> None:
        self._drop(nonce)

    def _persist(self, session: Session[Any]) -> bytes:
        """Store a finished session's secret output; return its public result."""
        spec, out = session.spec, session.result
        if isinstance(out, KeyShare):
            self.store.put_key_share(out)
            with self._lock:
                self._shares.pop(out.public.key_id, None)
            if spec.replaces_shares:
                self.store.discard_for_key(out.public.key_id)
        elif isinstance(out, Reshared):
            self._persist_reshared(out)
        elif isinstance(out, AuxInfo):
            self.store.put_aux_info(session.key_id, out)
        else:
            assert isinstance(out, Presignature)
            self.store.add_presignature(out)
        if spec.ceremony is not None:  # what this node's closing record will sign
            key_id = (out.public.key_id if isinstance(out, KeyShare | Reshared)
                      else session.key_id)
            self.ceremony_log.append(key_id, SessionRef(spec.name.value, session.session_id))
        return codec.to_bytes(spec.public_result(out, session.key_id))

    def _persist_reshared(self, out: Reshared) -> None:
        """A new member stores its new share (the old epoch's presignatures go); a dealer
        that left the committee erases its share, aux info and presignatures before it
        reports the session's result, which names it among the erased."""
        key_id = out.public.key_id
        if out.share is not None:
            self.store.put_key_share(out.share)
        else:
            self.store.erase_key(key_id)
        self.store.discard_for_key(key_id)
        with self._lock:
            self._shares.pop(key_id, None)

    def _touch(self, nonce: bytes) -> None:
        with self._lock:
            if nonce in self._sessions:
                s, lk, _ = self._sessions[nonce]
                self._sessions[nonce] = (s, lk, time.monotonic())

    def _drop(self, nonce: bytes) -> None:
        with self._lock:
            self._sessions.pop(nonce, None)

    def _expire(self) -> None:
        now = time.monotonic()
        for nonce in [n for n, (_, _, t) in self._sessions.items()
                      if now - t > SESSION_TIMEOUT_S]:
            del self._sessions[nonce]

    @property
    def session_count(self) -> int:
        with self._lock:
            return len(self._sessions)

    # --- signing --------------------------------------------------------------------------

    def sign(self, req: pb.SignRequest) -> SignatureShare:
        """σ_i, only if this node's own policy check allows the signature (DESIGN §4)."""
        if not req.request_id:
            raise UsageError("a sign request needs a request id")
        share = self._key_share(req.key_id)
        require_cluster_key(ProtocolName.SIGN, share.public, self.cluster)  # its pool too: no old t
        path = tuple(req.path)

        def sign(digest: bytes, note: bytes = b"") -> SignatureShare:
            return self.store.sign_once(
                req.presignature_id, req.request_id,
                lambda p: sign_share(p, self._signer_set(share, p.public.signers),
                                     self._rerandomized(share, p.public, path, digest)),
                note)

        if not req.HasField("authorization"):
            if self.unauthorized is None:
                raise AuthorizationDenied(
                    "a sign request must carry an authorization (transaction, policy hash "
                    "and approvals): this node never signs a bare digest")
            return self.unauthorized(req.digest, self.policy, sign)
        prior = self.store.answered(req.request_id, req.presignature_id)
        if prior is not None:
            return prior  # a retry: the same σ_i, and no second policy decision
        self._witness(req)
        if req.authorization.nonce_at_signing:
            _signer_sets_intersect(share)
        request = _signing_request(req.key_id, path, req.digest, req.authorization)
        subject = self._spend_subject(request)
        receipts = self._verified_receipts(req.spend_receipts, subject)
        views = [self._verified_view(v, subject) for v in req.spend_views]

        def sign_in_quorum(verdict: Verdict, note: bytes) -> SignatureShare:
            # After the policy check (whose refusal says more), before σ_i exists.
            spend_quorum.check_quorum(len(self.identities), self.cluster.threshold,
                                      self.party, receipts, views, subject)
            # The ledger note is journaled with σ_i, durable before σ_i can leave the node.
            return sign(verdict.digest, note)

        return self.policy.sign_authorized(request, list(req.authorization.approvals),
                                           req.authorization.policy_hash.hex(), self.clock(),
                                           sign_in_quorum, views,
                                           wallet=self._wallet(share, path))

    def _witness(self, req: pb.SignRequest) -> None:
        """The audit tree head the request carries, accepted and kept before any policy
        decision: a node that witnesses the log signs nothing for an OMS whose log does
        not extend the head it holds (zero_trust/audit_tree/witness.py)."""
        if self.witness is None:
            return
        if not req.HasField("audit_witness"):
            raise WitnessRefused("this node witnesses the OMS audit log: a sign request "
                                 "must carry the OMS's newest signed tree head")
        self.witness.witness(req.audit_witness, now_s=self.clock())

    def witnessed_head(self) -> pb.WitnessedHeadResponse:
        """The newest audit tree head this node accepted (unset: none, or not a witness)."""
        head = None if self.witness is None else self.witness.head
        if head is None:
            return pb.WitnessedHeadResponse()
        return pb.WitnessedHeadResponse(head=tree_head_to_proto(head))

    # --- limits across signer subsets (zero_trust/spend_quorum.py) ----------------------

    def reserve_spend(self, req: pb.ReserveSpendRequest) -> pb.SignedStatement:
        """Record the spend in this node's ledger (authorized against it, fsynced), then
        sign the receipt that says so. Repeating it for the same request is harmless."""
        share = self._key_share(req.key_id)  # UnknownKey unless this node holds the key
        if req.authorization.nonce_at_signing:
            _signer_sets_intersect(share)
        path = tuple(req.path)
        request = _signing_request(req.key_id, path, req.digest, req.authorization)
        subject = self._spend_subject(request)  # bounded before anything is stored
        self.policy.reserve(request, list(req.authorization.approvals),
                            req.authorization.policy_hash.hex(), self.clock(),
                            self.store.journal_note, wallet=self._wallet(share, path))
        return self._signed(spend_quorum.receipt_statement(self.party, subject))

    def read_spends(self, req: pb.ReadSpendsRequest) -> pb.SignedStatement:
        """This node's ledger entries of the initiator, signed, for a spend that a write
        quorum has recorded (never before: a read must follow the write it is counted
        with)."""
        subject = spend_quorum.SpendSubject(req.key_id, req.request_id, req.digest,
                                            req.initiator)
        _check_subject(subject)
        receipts = self._verified_receipts(req.receipts, subject)
        needed = spend_quorum.write_quorum(len(self.identities), self.cluster.threshold)
        if len(receipts) < needed:
            raise spend_quorum.SpendQuorumError(
                f"a ledger read needs receipts from {needed} nodes that recorded the spend, "
                f"got {len(receipts)}")
        entries = self.policy.spend_entries(req.initiator, self.clock())
        return self._signed(spend_quorum.view_statement(self.party, subject, receipts,
                                                        entries))

    def _spend_subject(self, request: SigningRequest) -> spend_quorum.SpendSubject:
        subject = spend_quorum.SpendSubject(request.key_id, request.request_id,
                                            signable(request).digest,
                                            request.initiator)
        _check_subject(subject)
        return subject

    def _signed(self, statement: bytes) -> pb.SignedStatement:
        return pb.SignedStatement(party=self.party, statement=statement,
                                  signature=self.keys.sign(statement))

    def _verified_receipts(self, receipts: Sequence[pb.SignedStatement],
                           subject: spend_quorum.SpendSubject) -> list[int]:
        """The distinct cluster nodes whose receipt for ``subject`` verifies."""
        if len(receipts) > len(self.identities):
            raise spend_quorum.SpendQuorumError(
                f"more spend receipts than the cluster's {len(self.identities)} nodes")
        parties = []
        for r in receipts:
            public = self.identities.get(r.party)
            if public is None:
                raise spend_quorum.SpendQuorumError(f"a spend receipt names unknown node "
                                                    f"{r.party}")
            if r.statement != spend_quorum.receipt_statement(r.party, subject) \
                    or not identity.verify(public, r.statement, r.signature):
                raise spend_quorum.SpendQuorumError(
                    f"node {r.party}'s spend receipt is not its signature over this request")
            parties.append(r.party)
        if len(set(parties)) != len(parties):
            raise spend_quorum.SpendQuorumError("a node's spend receipt is presented twice")
        return parties

    def _verified_view(self, view: pb.SignedStatement,
                       subject: spend_quorum.SpendSubject) -> spend_quorum.SpendView:
        """A view signed by the node it names, about ``subject`` (refused before any of
        its entries is counted)."""
        public = self.identities.get(view.party)
        if public is None:
            raise spend_quorum.SpendQuorumError(f"a ledger view names unknown node "
                                                f"{view.party}")
        if len(view.statement) > spend_quorum.MAX_STATEMENT_BYTES \
                or not identity.verify(public, view.statement, view.signature):
            raise spend_quorum.SpendQuorumError(
                f"node {view.party}'s ledger view is not its signature")
        parsed = spend_quorum.parse_view(view.statement)
        if parsed.party != view.party:
            raise spend_quorum.SpendQuorumError(f"node {view.party} signed another node's view")
        if parsed.subject != subject:
            raise spend_quorum.SpendQuorumError(
                f"node {view.party}'s ledger view is for another request")
        return parsed

    def close_transcript(self, key_id: bytes) -> pb.CloseTranscriptResponse:
        """This node's signed list of the key's ceremony sessions (ceremony_closing.py)."""
        self._key_share(key_id)  # UnknownKey unless this node holds the key
        sessions = self.ceremony_log.sessions(key_id)
        return pb.CloseTranscriptResponse(
            party=self.party, signature=ceremony_closing.sign(self.keys, key_id, sessions),
            sessions=[pb.CeremonySession(protocol=s.protocol, session_id=s.session_id)
                      for s in sessions])

    def install_policy(self, raw: bytes) -> pb.InstallPolicyResponse:
        bundle = self.policy.install(raw)
        return pb.InstallPolicyResponse(policy_hash=bytes.fromhex(bundle.bundle_hash),
                                        version=bundle.version)

    def _signer_set(self, share: KeyShare, signers: tuple[int, ...]) -> SignerSet:
        """Signer sets are cached per key epoch: building one costs point multiplications
        the hot path need not repeat."""
        key = (share.public.key_id, share.public.epoch, signers)
        with self._lock:
            sset = self._signer_sets.get(key)
        if sset is None:
            sset = SignerSet(share.public, signers)
            with self._lock:
                if len(self._signer_sets) > 256:
                    self._signer_sets.clear()
                self._signer_sets[key] = sset
        return sset

    def _wallet(self, share: KeyShare, path: tuple[int, ...]) -> str:
        """The address this node signs for at ``path``, derived from its own key share (a
        call's recipient may be the wallet itself; nobody else names it)."""
        return ethereum_address(self._derived_key(share, path).public_key)

    def _rerandomized(self, share: KeyShare, public: PresignaturePublic,
                      path: tuple[int, ...], digest: bytes) -> Rerandomized:
        """This node's own derivation of the signature's τ, R' and path key: it takes
        none of them from the coordinator. BIP32 derivations are cached per key and path
        (a refresh keeps the public key and chain code, so they outlive an epoch)."""
        return rerandomize(public, share.public.chain_code, path, digest,
                           self._derived_key(share, path))

    def _derived_key(self, share: KeyShare, path: tuple[int, ...]) -> bip32.DerivedKey:
        key = (share.public.key_id, path)
        with self._lock:
            derived = self._derived.get(key)
        if derived is None:
            derived = bip32.derive(share.public.public_key, share.public.chain_code, path)
            with self._lock:
                if len(self._derived) > 4096:
                    self._derived.clear()
                self._derived[key] = derived
        return derived

    def _key_share(self, key_id: bytes) -> KeyShare:
        """The key share, unsealed once and kept in memory (the hot path signs with it)."""
        with self._lock:
            share = self._shares.get(key_id)
        if share is None:
            share = self.store.get_key_share(key_id)
            with self._lock:
                self._shares[key_id] = share
        return share

    def info(self) -> pb.InfoResponse:
        keys = []
        for key_id in self.store.list_keys():
            pub = self.store.get_key_share(key_id).public
            try:
                self.store.get_aux_info(key_id)
                has_aux = True
            except KeyError:
                has_aux = False
            pool = [pb.PoolLevel(signers=list(s), available=n,
                                 ids=self.store.available(key_id, s))
                    for s, n in sorted(self.store.count_available(key_id).items())]
            keys.append(pb.KeyInfo(key_id=key_id, public_key=pub.public_key.to_bytes(),
                                   threshold=pub.threshold, parties=list(pub.parties),
                                   epoch=pub.epoch, has_aux_info=has_aux, pool=pool,
                                   chain_code=pub.chain_code))
        bundle = self.policy.bundle
        return pb.InfoResponse(
            party=self.party, keys=keys, version="0.1.0",
            policy_hash=bytes.fromhex(bundle.bundle_hash) if bundle else b"",
            policy_version=bundle.version if bundle else 0)

    # --- identification after a failed signature (CGGMP21 §4.3) -----------------------------

    def sign_evidence(self, req: pb.SignEvidenceRequest) -> pb.SignEvidenceResponse:
        """Signed evidence on the σ_i this node released for ``req.request_id``; refused
        before that, since S_i = χ_i·R is only harmless once σ_i is out."""
        share = self.store.answered(req.request_id, req.presignature_id)
        if share is None:
            raise PresignatureError(
                f"presignature {req.presignature_id.hex()[:16]} has not signed request "
                f"{req.request_id!r}: its identification evidence comes only after σ_i")
        public, aux, sset, key_share = self._identification_material(req.presignature_id)
        rr = self._rerandomized(key_share, public, tuple(req.path), req.digest)
        entries = sign_identification.evidence_for_share(
            self.keys, public, aux, sset.effective_secret(key_share), share, req.request_id,
            rr, self.rng)
        return pb.SignEvidenceResponse(party=self.party, evidence=entries)

    def identify_signers(self, req: pb.IdentifySignersRequest) -> pb.IdentifySignersResponse:
        """This node's verdict: the signers whose σ_j contradicts their evidence."""
        public, aux, sset, key_share = self._identification_material(req.presignature_id)
        rr = self._rerandomized(key_share, public, tuple(req.path), req.digest)
        culprits = sign_identification.identify_signers(
            self.party, self.identities, public, aux, sset.effective_shares, req, rr)
        return pb.IdentifySignersResponse(culprits=culprits)

    def _identification_material(
        self, presig_id: bytes
    ) -> tuple[PresignaturePublic, AuxInfo, SignerSet, KeyShare]:
        public = self.store.load_public(presig_id)
        share = self._key_share(public.key_id)
        sset = self._signer_set(share, public.signers)
        if sset.binding != public.binding:
            raise PresignatureError(
                f"presignature {presig_id.hex()[:16]} was made with other key shares "
                "(before a refresh): its evidence cannot be made or checked any more")
        return public, self.store.get_aux_info(public.key_id), sset, share


def _signing_request(key_id: bytes, path: tuple[int, ...], digest: bytes,
                     auth: pb.Authorization) -> SigningRequest:
    return SigningRequest(auth.request_id, key_id, path, auth.transaction, digest,
                          auth.initiator, auth.usd_price, auth.expires_at, auth.replaces,
                          auth.message, nonce_at_signing=auth.nonce_at_signing)


def _check_subject(subject: spend_quorum.SpendSubject) -> None:
    """Bounds on what a receipt or view echoes, before it is signed or stored."""
    if not subject.request_id:
        raise UsageError("a spend names the OMS request it belongs to")
    if len(spend_quorum.receipt_statement(0, subject)) > spend_quorum.MAX_RECEIPT_BYTES:
        raise UsageError(f"a spend receipt has at most {spend_quorum.MAX_RECEIPT_BYTES} bytes")


def new_nonce() -> bytes:
    return secrets.token_bytes(32)


def _signer_sets_intersect(share: KeyShare) -> None:
    """Approvals that leave the nonce to the signer (``nonce_at_signing``) are safe only
    if any two signer sets of the key share a node: that node, which remembers the one
    transaction it signed under the request id (``request_binding``), refuses the same
    approvals at a second nonce. With 2t ≤ n two disjoint sets could each sign one."""
    t, n = share.public.threshold, len(share.public.parties)
    if 2 * t <= n:
        raise AuthorizationDenied(
            f"this {t}-of-{n} key has disjoint signer sets: its approvals must bind the "
            "transaction's nonce (a request with the nonce chosen at signing is refused)")
