"""The protocol registry: every protocol a signer node runs as a session, by name.

The node, its sessions, the coordinator, the ceremony-transcript verifier and the
simulator look a protocol up here (``REGISTRY``) and use what its ``ProtocolSpec``
gives: its rounds and their message types, how a node configures and starts it, what
it outputs and reports, and how a transcript replays it. None of them names a
protocol or a round. A protocol name arrives as text only at a wire boundary (a
``StartSessionRequest``, a transcript file); ``ProtocolName.parse`` turns it into the
enum there and refuses an unknown name with ``UnknownProtocol``. The enum's values are
the wire strings, so old transcripts and the proto fields keep working.

Adding a protocol means exactly one module plus one registry entry:

1. the module, ``mpcnode/protocol/<name>.py``: its round names (a ``StrEnum``), its
   message dataclasses, ``configure(party, params, held) -> config``,
   ``start(config, rng) -> Next`` and round states whose ``receive(inbound, rng)``
   returns ``Next`` or ``Done`` (``rounds.py``); if it appears in ceremony
   transcripts, its replay of a session from the public record;
2. the entry, in this file: a ``ProtocolName`` member and a ``ProtocolSpec`` in
   ``REGISTRY``.

``tests/mpcnode/protocol/test_registry.py`` checks that every entry is complete and
that the node, sessions, coordinator, verifier and simulator reach protocols only
through this registry.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Generic, Never, TypeVar

from mpcnode.core.errors import ProtocolError, UsageError
from mpcnode.crypto.random_source import RandomSource
from mpcnode.protocol import aux_info, identify_round, keygen, presign, refresh, reshare
from mpcnode.protocol.identify_round import SignedMessage
from mpcnode.protocol.key_share import AuxInfo, KeyShare, PublicKeyData, Reshared
from mpcnode.protocol.presignature import Presignature, PresignaturePublic
from mpcnode.protocol.results import AuxResult, KeygenResult, ReshareResult
from mpcnode.protocol.rounds import Next, Round, RoundName
from mpcnode.protocol.session_params import Holdings, PublicRecord, SessionParams

C = TypeVar("C")  # the protocol's config at one party
R = TypeVar("R")  # what a finished session leaves at a party (secret)
W = TypeVar("W")  # what a party reports when the session ends (public, on the wire)
F = TypeVar("F", bound=ProtocolError)


class UnknownProtocol(UsageError):  # noqa: N818 - reads as the refusal it is
    """A protocol name that no entry of the registry has."""


class ProtocolName(StrEnum):
    """Every protocol by its wire name (``StartSessionRequest.protocol``, transcripts)."""

    KEYGEN = "keygen"
    AUX_INFO = "aux_info"
    PRESIGN = "presign"
    REFRESH = "refresh"
    RESHARE = "reshare"
    SIGN = "sign"  # one Sign call per signer, not a session: it has no entry in REGISTRY

    def __repr__(self) -> str:
        return repr(self.value)  # quoted as on the wire, like a round name

    @classmethod
    def parse(cls, text: str) -> ProtocolName:
        """The protocol named ``text`` (a wire string); UnknownProtocol if none is."""
        try:
            return cls(text)
        except ValueError:
            raise UnknownProtocol(f"unknown protocol {text!r}") from None


@dataclass(frozen=True)
class RoundSpec:
    """The messages of one round: sent by the step before (``start`` for the first
    round), decoded into these types, consumed by the state's ``receive``."""

    name: RoundName  # a member of the protocol module's round-name enum
    broadcast: type
    direct: type | None = None  # None: the round has no direct messages
    direct_secret: bool = False  # direct payloads are secret shares: never disclosed


@dataclass(frozen=True)
class Recovery(Generic[F]):
    """One more round after a failure that no single check pins on a party, run by every
    honest party together to name the culprit (CGGMP21 §4.3, "Identifying aborts")."""

    failure: type[F]  # what the last round raises to start the recovery
    round: RoundSpec
    disclosed_round: RoundName  # the round whose received direct messages the recovery discloses
    start: Callable[[F, Iterable[SignedMessage], RandomSource], Next[Round[Never], Any, Any]]


@dataclass(frozen=True)
class CeremonyRole:
    """How an offline verifier replays this protocol's sessions in a ceremony transcript,
    from public data only (``coordinator/transcript_verify.py``)."""

    makes_key: bool  # the key's first session, and its only one of this protocol
    # The session's parameters and session id checked against the key before it (None
    # for the first session), and every check the key after it depends on: that key.
    key_after: Callable[[PublicRecord, PublicKeyData | None], PublicKeyData]
    # Every public check left (the expensive ones run last); the result each party must
    # have reported, given the key after the session.
    result: Callable[[PublicRecord, PublicKeyData], object]
    required: str = ""  # if set, a transcript without such a session is refused with it


@dataclass(frozen=True)
class ProtocolSpec(Generic[C, R, W]):
    """One protocol, as everything above the pure state machines needs it."""

    name: ProtocolName
    rounds: tuple[RoundSpec, ...]  # in order
    configure: Callable[[int, SessionParams, Holdings], C]  # a node's config, or refusal
    session_id: Callable[[C], bytes]
    start: Callable[[C, RandomSource], Next[Round[R], Any, Any]]
    output: type[R]
    public_result: Callable[[R, bytes], W]  # (output, the session's key id) -> result
    result_type: type[W]
    replaces_shares: bool = False  # the output replaces the key's shares: older
    #                                presignatures are discarded
    results_agree: bool = True  # every party reports the same public result
    recovery: Recovery[Any] | None = None
    ceremony: CeremonyRole | None = None

    def round(self, name: str) -> RoundSpec:
        """The round called ``name``, the recovery round included; KeyError if none."""
        for rnd in self.all_rounds:
            if rnd.name == name:
                return rnd
        raise KeyError(f"{self.name} has no round {name!r}")

    @property
    def all_rounds(self) -> tuple[RoundSpec, ...]:
        return self.rounds + ((self.recovery.round,) if self.recovery else ())


def _key_result(share: KeyShare, key_id: bytes) -> KeygenResult:
    return KeygenResult.of(share.public)


def _presignature_result(presignature: Presignature, key_id: bytes) -> PresignaturePublic:
    return presignature.public


def _key_of(record: PublicRecord, key: PublicKeyData) -> KeygenResult:
    return KeygenResult.of(key)


def _keygen_session(cfg: keygen.KeygenConfig) -> bytes:
    return cfg.session


def _aux_session(cfg: aux_info.AuxConfig) -> bytes:
    return cfg.session


def _refresh_session(cfg: refresh.RefreshConfig) -> bytes:
    return cfg.session


def _reshare_session(cfg: reshare.ReshareConfig) -> bytes:
    return cfg.session


KEYGEN = ProtocolSpec(
    name=ProtocolName.KEYGEN,
    rounds=(
        RoundSpec(keygen.KeygenRound.COMMIT, keygen.Msg1),
        RoundSpec(keygen.KeygenRound.REVEAL, keygen.Msg2, keygen.Share2, direct_secret=True),
        RoundSpec(keygen.KeygenRound.PROVE, keygen.Msg3),
    ),
    configure=keygen.configure,
    session_id=_keygen_session,
    start=keygen.start,
    output=KeyShare,
    public_result=_key_result,
    result_type=KeygenResult,
    ceremony=CeremonyRole(makes_key=True, key_after=keygen.replay, result=_key_of),
)

AUX_INFO = ProtocolSpec(
    name=ProtocolName.AUX_INFO,
    rounds=(
        RoundSpec(aux_info.AuxRound.COMMIT, aux_info.Msg1),
        RoundSpec(aux_info.AuxRound.REVEAL, aux_info.Msg2),
        RoundSpec(aux_info.AuxRound.PROVE, aux_info.Msg3, aux_info.Direct3),
    ),
    configure=aux_info.configure,
    session_id=_aux_session,
    start=aux_info.start,
    output=AuxInfo,
    public_result=AuxResult.of,
    result_type=AuxResult,
    ceremony=CeremonyRole(
        makes_key=False, key_after=aux_info.check_record, result=aux_info.replay,
        required="the transcript holds no aux-info session (Paillier keys)"),
)

PRESIGN = ProtocolSpec(
    name=ProtocolName.PRESIGN,
    rounds=(
        RoundSpec(presign.PresignRound.ENCRYPT, presign.Bcast1, presign.Direct1),
        RoundSpec(presign.PresignRound.MTA, presign.Bcast2, presign.Direct2),
        RoundSpec(presign.PresignRound.DELTA, presign.Bcast3, presign.Direct3),
    ),
    configure=presign.configure,
    session_id=presign.session_id_of,
    start=presign.start,
    output=Presignature,
    public_result=_presignature_result,
    result_type=PresignaturePublic,
    results_agree=False,  # each signer's view of the MtA messages differs
    recovery=Recovery(
        failure=presign.DeltaCheckError,
        round=RoundSpec(presign.PresignRound.IDENTIFY, identify_round.DisclosureBcast,
                        identify_round.EvidenceDirect),
        disclosed_round=presign.PresignRound.MTA,
        start=identify_round.start_delta,
    ),
)

REFRESH = ProtocolSpec(
    name=ProtocolName.REFRESH,
    rounds=(
        RoundSpec(refresh.RefreshRound.COMMIT, refresh.Msg1),
        RoundSpec(refresh.RefreshRound.REVEAL, refresh.Msg2, refresh.Share2,
                  direct_secret=True),
        RoundSpec(refresh.RefreshRound.PROVE, refresh.Msg3),
    ),
    configure=refresh.configure,
    session_id=_refresh_session,
    start=refresh.start,
    output=KeyShare,
    public_result=_key_result,
    result_type=KeygenResult,
    replaces_shares=True,
    ceremony=CeremonyRole(makes_key=False, key_after=refresh.replay, result=_key_of),
)

RESHARE = ProtocolSpec(
    name=ProtocolName.RESHARE,
    rounds=(
        RoundSpec(reshare.ReshareRound.COMMIT, reshare.Msg1),
        RoundSpec(reshare.ReshareRound.REVEAL, reshare.Msg2, reshare.Share2,
                  direct_secret=True),
        RoundSpec(reshare.ReshareRound.PROVE, reshare.Msg3),
    ),
    configure=reshare.configure,
    session_id=_reshare_session,
    start=reshare.start,
    output=Reshared,
    public_result=ReshareResult.of,
    result_type=ReshareResult,
    replaces_shares=True,
    ceremony=CeremonyRole(makes_key=False, key_after=reshare.replay, result=reshare.result_of),
)

REGISTRY: Mapping[ProtocolName, ProtocolSpec[Any, Any, Any]] = {
    spec.name: spec for spec in (KEYGEN, AUX_INFO, PRESIGN, REFRESH, RESHARE)
}
"""Every protocol that runs as a session, by name (the specs differ in their types)."""


def session_protocol(name: str) -> ProtocolSpec[Any, Any, Any]:
    """The protocol a start request names; UnknownProtocol unless it runs as a session."""
    spec = REGISTRY.get(ProtocolName.parse(name))
    if spec is None:
        raise UnknownProtocol(f"protocol {name!r} does not run as a session")
    return spec


def ceremony_protocols() -> tuple[ProtocolName, ...]:
    """The protocols a ceremony transcript may hold, in registry order."""
    return tuple(name for name, spec in REGISTRY.items() if spec.ceremony is not None)
