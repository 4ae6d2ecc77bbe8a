"""What a session is started with, what a node lends it, and a finished session's
public record: the inputs of every protocol's ``configure`` and ``replay``.

The coordinator starts a session with the same public parameters at every party
(``SessionParams``, the fields of ``StartSessionRequest``). A node turns them into the
protocol's config with what it holds (``Holdings``: its key shares, aux info and safe
primes) and refuses anything its own material contradicts. An offline verifier replays
a finished session from its ``PublicRecord``: the same parameters, the session id and
every public message, decoded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol, TypeVar

from mpcnode.core.errors import UsageError
from mpcnode.core.params import DEFAULT_PROFILE, PROFILES, Profile
from mpcnode.protocol.key_share import AuxInfo, KeyShare, PublicKeyData

T = TypeVar("T")


@dataclass(frozen=True)
class SessionParams:
    """A session's public parameters, the same at every party and in its transcript."""

    parties: tuple[int, ...]  # ascending party ids
    nonce: bytes  # fresh per session, chosen by the coordinator
    threshold: int = 0  # t, set by keygen (the key's) and reshare (the new committee's)
    key_id: bytes = b""  # the key the session serves (b"" for keygen)
    path: tuple[int, ...] = ()  # BIP32 path, set by presign only
    profile: str = ""  # parameter profile, set by aux info only ("" = the default)
    epoch: int = 0  # the key share's epoch the session serves (0 for keygen: a new key)
    new_parties: tuple[int, ...] = ()  # the committee a reshare moves the key to

    def resolve_profile(self) -> Profile:
        """The named profile; "" names the default, as every node resolves it."""
        profile = PROFILES.get(self.profile or DEFAULT_PROFILE.name)
        if profile is None:
            raise RecordError(f"unknown profile {self.profile!r}")
        return profile


@dataclass(frozen=True)
class ClusterView:
    """What a node's own cluster.toml fixes for every session: the coordinator only
    repeats these values, and a node refuses a session that asks for others (DESIGN §2)."""

    threshold: int  # t of t-of-n (a reshare moves a key to this threshold only)
    parties: tuple[int, ...]  # every node id, ascending


class Holdings(Protocol):
    """What a signer node holds that a new session may need (its cluster's
    configuration, its store, its primes)."""

    @property
    def cluster(self) -> ClusterView:
        """The threshold and party set of the node's cluster.toml."""
        ...

    def get_key_share(self, key_id: bytes) -> KeyShare:
        """The share of ``key_id``; KeyError if this node holds none."""
        ...

    def get_key_public(self, key_id: bytes) -> PublicKeyData:
        """The public data of ``key_id``: its share's, or, for a node joining the key's
        committee, what the ceremony that added the node gave it; KeyError if neither."""
        ...

    def get_aux_info(self, key_id: bytes) -> AuxInfo:
        """The aux info of ``key_id``; KeyError if this node holds none."""
        ...

    def take_primes(self, profile: Profile) -> tuple[int, int]:
        """Two fresh safe primes of ``profile.prime_bits``, never handed out again."""
        ...


class RecordError(UsageError):
    """A session's parameters or session id are not what the protocol allows (no party
    is named: the record, or the request, is at fault)."""


class ParameterRefused(RecordError):  # noqa: N818 - the node's verdict, as operators read it
    """A start request asks for a parameter that the node's own configuration or key share
    contradicts: the coordinator is at fault, and the node names the parameter."""

    def __init__(self, protocol: str, name: str, asked: object, reason: str) -> None:
        self.protocol = protocol
        self.name = name
        self.asked = asked
        super().__init__(f"{protocol} refused: {name} {asked!r} {reason}")


_UNSET = {"threshold": 0, "key_id": b"", "path": (), "profile": "", "epoch": 0,
          "new_parties": ()}


def require_params(protocol: str, params: SessionParams, *, uses: tuple[str, ...] = (),
                   parties: tuple[int, ...] | None = None, source: str = "") -> None:
    """Refuse ``params`` unless every field ``protocol`` does not use is unset and its
    party set is ``parties`` (given by ``source``, the node's own record of it)."""
    for name, unset in _UNSET.items():
        value = getattr(params, name)
        if name not in uses and value != unset:
            raise ParameterRefused(protocol, name, value, f"is not a parameter of {protocol}")
    if parties is not None and params.parties != parties:
        raise ParameterRefused(protocol, "parties", params.parties,
                               f"differ from {source}: {parties}")


def require_cluster_keygen(params: SessionParams, cluster: ClusterView) -> None:
    """A keygen makes a key of the cluster itself: its threshold and all of its nodes."""
    require_params("keygen", params, uses=("threshold",), parties=cluster.parties,
                   source="the nodes of cluster.toml")
    if params.threshold != cluster.threshold:
        raise ParameterRefused("keygen", "threshold", params.threshold,
                               f"differs from cluster.toml's threshold {cluster.threshold}")


def require_held_key(protocol: str, params: SessionParams, key: PublicKeyData,
                     cluster: ClusterView) -> None:
    """A key this node holds, of this cluster (its threshold, a committee of its nodes:
    all of them after keygen, those a reshare chose after one), at the epoch the session
    names: after a refresh or reshare, a session for the old shares is refused before it
    reads them (the coordinator cannot run a protocol on a retired epoch)."""
    require_cluster_key(protocol, key, cluster)
    if params.epoch != key.epoch:
        raise ParameterRefused(protocol, "epoch", params.epoch,
                               f"is not the epoch of this node's share of the key "
                               f"({key.epoch})")


def require_cluster_key(protocol: str, key: PublicKeyData, cluster: ClusterView) -> None:
    """A key of this cluster: its threshold is cluster.toml's and its committee nodes of
    it. After the operator changes t in cluster.toml, a key of the old t is refused by
    every protocol but reshare, and by signing (its presignatures made at the old t
    included): t is the operator's decision, and the spend quorums that hold limits across
    signer subsets are sized with cluster.toml's t (zero_trust/spend_quorum.py), so no key
    may keep signing at another t until it is reshared to the new one."""
    if key.threshold != cluster.threshold or not set(key.parties) <= set(cluster.parties):
        raise ParameterRefused(protocol, "key_id", key.key_id.hex(),
                               f"names a {key.threshold}-of-{key.parties} key, not one of "
                               f"this cluster ({cluster.threshold} of {cluster.parties}); "
                               "reshare it to cluster.toml's threshold")


@dataclass(frozen=True)
class PublicRecord:
    """A finished session as its public messages show it: broadcasts by round and
    sender, disclosed direct messages by round and (sender, recipient), each decoded
    into its round's message type."""

    params: SessionParams
    session_id: bytes
    broadcast_messages: Mapping[str, Mapping[int, object]]
    direct_messages: Mapping[str, Mapping[tuple[int, int], object]]

    def broadcasts(self, round_name: str, cls: type[T]) -> dict[int, T]:
        """Every broadcast of ``round_name``, by sender, as ``cls``."""
        return {i: _as(cls, m) for i, m in self.broadcast_messages.get(round_name, {}).items()}

    def direct(self, round_name: str, cls: type[T]) -> dict[tuple[int, int], T]:
        """Every disclosed direct message of ``round_name``, by (sender, recipient)."""
        return {p: _as(cls, m) for p, m in self.direct_messages.get(round_name, {}).items()}


def _as(cls: type[T], message: object) -> T:
    if not isinstance(message, cls):
        raise TypeError(f"expected a {cls.__name__}, got a {type(message).__name__}")
    return message


def check_params(record: PublicRecord, key_id: bytes, *, threshold: bool = False,
                 profile: bool = False, committee: bool = False) -> None:
    """The session serves the key ``key_id`` (b"" for keygen) at the root of its tree;
    only a session that says so sets a threshold (keygen, reshare), a profile (aux info)
    or a new committee (reshare)."""
    p = record.params
    if not committee and p.new_parties:
        raise RecordError("params.new_parties must be empty")
    if p.key_id != key_id:
        raise RecordError("params.key_id is not the key of this transcript")
    if p.path:
        raise RecordError("params.path must be empty")
    if not threshold and p.threshold != 0:
        raise RecordError("params.threshold must be 0")
    if not profile and p.profile != "":
        raise RecordError("params.profile must be empty")


def check_session_id(record: PublicRecord, expected: bytes) -> None:
    if record.session_id != expected:
        raise RecordError("the session id is not the one its public parameters and nonce "
                          "give")
