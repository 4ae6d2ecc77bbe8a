"""The approver registry: who may initiate or approve, with which roles and credentials.

The registry is embedded in the policy bundle that an admin quorum signs and every signer
node installs (DESIGN §4), so a node trusts an approval only if its credential is pinned
here. That is why the registry is immutable, validated on construction, and has exactly
one serialisation (``to_canonical_json``) which ``from_json`` insists on byte for byte.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace

from fido2.cose import CoseKey

from mpcnode.core.canonical_json import canonical_json
from zero_trust.approvals.approval_errors import (
    CredentialKeyError,
    InvalidRegistryError,
    RegistryFormatError,
    UnknownApproverError,
)
from zero_trust.approvals.credential_key import Verifier, credential_verifier, parse_credential_key
from zero_trust.approvals.wire_json import (
    b64url_encode,
    expect_b64url,
    expect_fields,
    expect_int,
    expect_list,
    expect_object,
    expect_str,
    parse_object,
)

# The roles are the policy's (DESIGN §6); re-exported for the registry's users.
from zero_trust.policy.document import Role as Role

REGISTRY_FORMAT_VERSION = 1

USER_ID_PATTERN = re.compile(r"[a-z0-9][a-z0-9._@-]{0,63}")
"""Lower case only: "Alice" and "alice" must not be two people who each count once."""

MAX_DISPLAY_NAME_CHARS = 128
MAX_CREDENTIAL_ID_BYTES = 1023  # WebAuthn L3 §5.8.3 credential id limit
MAX_CREDENTIALS_PER_USER = 16
MAX_SIGN_COUNT = 2**32 - 1  # the counter is 32 bits in authenticator data


def check_user_id(user_id: object) -> str:
    if not isinstance(user_id, str) or not USER_ID_PATTERN.fullmatch(user_id):
        raise InvalidRegistryError(
            f"user id {user_id!r} must be 1-64 characters of a-z 0-9 . _ @ -, "
            "starting with a letter or digit"
        )
    return user_id


@dataclass(frozen=True)
class CredentialRecord:
    """One registered FIDO2 credential: its id, COSE public key and counter at registration."""

    credential_id: bytes
    public_key: bytes
    """Canonical CBOR of the COSE_Key (see ``credential_key``)."""
    sign_count: int
    """The signature counter reported at registration; assertions must exceed it."""
    cose_key: CoseKey = field(init=False, repr=False, compare=False)
    verify: Verifier = field(init=False, repr=False, compare=False)
    """``verify(message, signature)`` under this key (built once)."""

    def __post_init__(self) -> None:
        if not isinstance(self.credential_id, bytes) or not (
            1 <= len(self.credential_id) <= MAX_CREDENTIAL_ID_BYTES
        ):
            raise InvalidRegistryError(
                f"a credential id must be 1-{MAX_CREDENTIAL_ID_BYTES} bytes"
            )
        if isinstance(self.sign_count, bool) or not isinstance(self.sign_count, int) or not (
            0 <= self.sign_count <= MAX_SIGN_COUNT
        ):
            raise InvalidRegistryError("a sign count must be an integer in [0, 2^32 - 1]")
        if not isinstance(self.public_key, bytes):
            raise InvalidRegistryError("a credential public key must be bytes")
        try:
            key = parse_credential_key(self.public_key)
        except CredentialKeyError as exc:
            raise InvalidRegistryError(
                f"credential {b64url_encode(self.credential_id)}: {exc}"
            ) from exc
        object.__setattr__(self, "cose_key", key)
        object.__setattr__(self, "verify", credential_verifier(key))


@dataclass(frozen=True)
class Approver:
    """A person known to the OMS. Credentials are kept sorted by id (one canonical form)."""

    user_id: str
    display_name: str
    roles: frozenset[Role]
    credentials: tuple[CredentialRecord, ...] = ()

    def __post_init__(self) -> None:
        check_user_id(self.user_id)
        self._check_display_name()
        if not isinstance(self.roles, frozenset) or not self.roles:
            raise InvalidRegistryError(f"user {self.user_id!r} needs a non-empty set of roles")
        if not all(isinstance(role, Role) for role in self.roles):
            raise InvalidRegistryError(f"user {self.user_id!r} has a role that is not a Role")
        credentials = tuple(sorted(self.credentials, key=lambda c: c.credential_id))
        if not all(isinstance(c, CredentialRecord) for c in credentials):
            raise InvalidRegistryError(f"user {self.user_id!r} has a malformed credential")
        if len(credentials) > MAX_CREDENTIALS_PER_USER:
            raise InvalidRegistryError(
                f"user {self.user_id!r} has more than {MAX_CREDENTIALS_PER_USER} credentials"
            )
        if len({c.credential_id for c in credentials}) != len(credentials):
            raise InvalidRegistryError(f"user {self.user_id!r} lists a credential twice")
        object.__setattr__(self, "credentials", credentials)

    def _check_display_name(self) -> None:
        name = self.display_name
        if (
            not isinstance(name, str)
            or not 1 <= len(name) <= MAX_DISPLAY_NAME_CHARS
            or name != name.strip()
            # no control, format (bidi override), surrogate or unassigned characters
            or any(unicodedata.category(ch).startswith("C") for ch in name)
        ):
            raise InvalidRegistryError(
                f"user {self.user_id!r} needs a display name of 1-{MAX_DISPLAY_NAME_CHARS} "
                "printable characters without surrounding spaces"
            )

    def has_role(self, role: Role) -> bool:
        return role in self.roles

    def credential(self, credential_id: bytes) -> CredentialRecord | None:
        for record in self.credentials:
            if record.credential_id == credential_id:
                return record
        return None


@dataclass(frozen=True)
class ApproverRegistry:
    """All approvers, sorted by user id; a credential id belongs to exactly one user."""

    approvers: tuple[Approver, ...] = ()
    _by_user: Mapping[str, Approver] = field(init=False, repr=False, compare=False)
    _by_credential: Mapping[bytes, Approver] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        approvers = tuple(sorted(self.approvers, key=lambda a: a.user_id))
        by_user: dict[str, Approver] = {}
        by_credential: dict[bytes, Approver] = {}
        for approver in approvers:
            if not isinstance(approver, Approver):
                raise InvalidRegistryError("a registry entry is not an Approver")
            if approver.user_id in by_user:
                raise InvalidRegistryError(f"user {approver.user_id!r} is listed twice")
            by_user[approver.user_id] = approver
            for record in approver.credentials:
                other = by_credential.get(record.credential_id)
                if other is not None:
                    raise InvalidRegistryError(
                        f"credential {b64url_encode(record.credential_id)} is registered to "
                        f"both {other.user_id!r} and {approver.user_id!r}"
                    )
                by_credential[record.credential_id] = approver
        object.__setattr__(self, "approvers", approvers)
        object.__setattr__(self, "_by_user", by_user)
        object.__setattr__(self, "_by_credential", by_credential)

    # -- lookups ---------------------------------------------------------------------

    def __iter__(self) -> Iterator[Approver]:
        return iter(self.approvers)

    def __len__(self) -> int:
        return len(self.approvers)

    def __contains__(self, user_id: object) -> bool:
        return user_id in self._by_user

    def find(self, user_id: str) -> Approver | None:
        return self._by_user.get(user_id)

    def approver(self, user_id: str) -> Approver:
        found = self._by_user.get(user_id)
        if found is None:
            raise UnknownApproverError(user_id)
        return found

    def credential_owner(self, credential_id: bytes) -> Approver | None:
        return self._by_credential.get(credential_id)

    def with_role(self, role: Role) -> tuple[Approver, ...]:
        return tuple(a for a in self.approvers if role in a.roles)

    # -- edits (each returns a new registry; installing it takes an admin quorum) ----

    def with_approver(self, approver: Approver) -> ApproverRegistry:
        """Add ``approver``, or replace the entry with the same user id."""
        others = tuple(a for a in self.approvers if a.user_id != approver.user_id)
        return ApproverRegistry((*others, approver))

    def without_approver(self, user_id: str) -> ApproverRegistry:
        self.approver(user_id)
        return ApproverRegistry(tuple(a for a in self.approvers if a.user_id != user_id))

    def with_credential(self, user_id: str, record: CredentialRecord) -> ApproverRegistry:
        approver = self.approver(user_id)
        return self.with_approver(replace(approver, credentials=(*approver.credentials, record)))

    # -- serialisation -----------------------------------------------------------------

    def to_dict(self) -> dict[str, object]:
        """The JSON object form, for embedding in a larger canonical document."""
        return {
            "version": REGISTRY_FORMAT_VERSION,
            "approvers": [_approver_to_dict(a) for a in self.approvers],
        }

    def to_canonical_json(self) -> bytes:
        return canonical_json(self.to_dict())

    @classmethod
    def from_dict(cls, obj: object) -> ApproverRegistry:
        """Strict inverse of ``to_dict``: unknown or missing fields and wrong types fail."""
        top = expect_object(obj, "registry", RegistryFormatError)
        expect_fields(top, frozenset({"version", "approvers"}), "registry", RegistryFormatError)
        version = expect_int(
            top["version"], "version", RegistryFormatError, low=0, high=MAX_SIGN_COUNT
        )
        if version != REGISTRY_FORMAT_VERSION:
            raise RegistryFormatError(
                f"version {version} is not supported (expected {REGISTRY_FORMAT_VERSION})"
            )
        entries = expect_list(top["approvers"], "approvers", RegistryFormatError)
        try:
            return cls(tuple(_approver_from_dict(entry, i) for i, entry in enumerate(entries)))
        except InvalidRegistryError as exc:
            raise RegistryFormatError(str(exc)) from exc

    @classmethod
    def from_json(cls, data: bytes) -> ApproverRegistry:
        """Parse canonical JSON; any other spelling of the same registry is refused."""
        registry = cls.from_dict(parse_object(data, RegistryFormatError))
        if registry.to_canonical_json() != data:
            raise RegistryFormatError(
                "not in canonical form (sorted keys and entries, no whitespace, UTF-8)"
            )
        return registry


def _approver_to_dict(approver: Approver) -> dict[str, object]:
    return {
        "user_id": approver.user_id,
        "display_name": approver.display_name,
        "roles": sorted(role.value for role in approver.roles),
        "credentials": [
            {
                "credential_id": b64url_encode(c.credential_id),
                "public_key": b64url_encode(c.public_key),
                "sign_count": c.sign_count,
            }
            for c in approver.credentials
        ],
    }


_ROLE_VALUES = frozenset(role.value for role in Role)
_APPROVER_FIELDS = frozenset({"user_id", "display_name", "roles", "credentials"})
_CREDENTIAL_FIELDS = frozenset({"credential_id", "public_key", "sign_count"})


def _approver_from_dict(value: object, index: int) -> Approver:
    name = f"approvers[{index}]"
    obj = expect_object(value, name, RegistryFormatError)
    expect_fields(obj, _APPROVER_FIELDS, name, RegistryFormatError)
    roles: set[Role] = set()
    for role_value in expect_list(obj["roles"], f"{name}.roles", RegistryFormatError):
        text = expect_str(role_value, f"{name}.roles[]", RegistryFormatError)
        if text not in _ROLE_VALUES:
            raise RegistryFormatError(f"{name} has unknown role {text!r}")
        if Role(text) in roles:
            raise RegistryFormatError(f"{name} lists role {text!r} twice")
        roles.add(Role(text))
    credentials = [
        _credential_from_dict(entry, f"{name}.credentials[{i}]")
        for i, entry in enumerate(
            expect_list(obj["credentials"], f"{name}.credentials", RegistryFormatError)
        )
    ]
    return Approver(
        user_id=expect_str(obj["user_id"], f"{name}.user_id", RegistryFormatError),
        display_name=expect_str(obj["display_name"], f"{name}.display_name", RegistryFormatError),
        roles=frozenset(roles),
        credentials=tuple(credentials),
    )


def _credential_from_dict(value: object, name: str) -> CredentialRecord:
    obj = expect_object(value, name, RegistryFormatError)
    expect_fields(obj, _CREDENTIAL_FIELDS, name, RegistryFormatError)
    return CredentialRecord(
        credential_id=expect_b64url(obj["credential_id"], f"{name}.credential_id",
                                    RegistryFormatError),
        public_key=expect_b64url(obj["public_key"], f"{name}.public_key", RegistryFormatError),
        sign_count=expect_int(
            obj["sign_count"], f"{name}.sign_count", RegistryFormatError, low=0,
            high=MAX_SIGN_COUNT,
        ),
    )
