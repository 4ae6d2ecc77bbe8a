"""The per-cluster certificate authority made by the key ceremony (DESIGN §3).

One ECDSA P-256 CA signs the TLS certificates of the signer nodes and of the coordinator.
A certificate's role is its subject's OrganizationalUnitName, doubled by an
ExtendedKeyUsage: a node is a TLS server (serverAuth), the coordinator a TLS client
(clientAuth). A node accepts a call only from a peer whose certificate chains to the CA
and names the coordinator role, so the role check here backs up what gRPC already did.
The CA key is needed only at the ceremony (and to issue replacements) and goes offline
afterwards. Private keys leave this module only as PEM bytes; ``atomic_file.write_private``
stores them.
"""

from __future__ import annotations

import datetime as dt
import ipaddress

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mpcnode.core.errors import MpcnodeError

# Re-exported: the cluster ceremony still writes its keys and certificates as pki.write_*.
from mpcnode.state.atomic_file import write_private as write_private
from mpcnode.state.atomic_file import write_public as write_public

ROLE_NODE = "mpc-node"
ROLE_COORDINATOR = "mpc-coordinator"
ROLES = (ROLE_NODE, ROLE_COORDINATOR)

_EKU = {
    ROLE_NODE: ExtendedKeyUsageOID.SERVER_AUTH,
    ROLE_COORDINATOR: ExtendedKeyUsageOID.CLIENT_AUTH,
}
# Tolerated clock skew between the ceremony machine and the daemons.
_BACKDATE = dt.timedelta(minutes=5)


class PkiError(MpcnodeError, ValueError):
    """A certificate or key could not be made or read (bad input, not a CA, wrong key)."""


def make_ca(cluster_name: str, days: int = 3650) -> tuple[bytes, bytes]:
    """Create the cluster CA; returns (private key PEM, certificate PEM)."""
    _require_name(cluster_name, "cluster name")
    _require_days(days)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, cluster_name),
        x509.NameAttribute(NameOID.COMMON_NAME, f"{cluster_name} CA"),
    ])
    now = _now()
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + dt.timedelta(days=days))
        # pathlen 0: the CA signs leaves only, never an intermediate.
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    return _key_pem(key), cert.public_bytes(serialization.Encoding.PEM)


def issue_certificate(ca_key_pem: bytes, ca_cert_pem: bytes, common_name: str, role: str,
                      hosts: list[str], days: int = 825) -> tuple[bytes, bytes]:
    """Issue a leaf certificate for ``role``; returns (private key PEM, certificate PEM).

    ``hosts`` become the subjectAltName: IP literals as IPAddress, the rest as DNSName.
    The leaf never outlives its CA.
    """
    if role not in ROLES:
        raise PkiError(f"unknown role {role!r}; expected one of {', '.join(ROLES)}")
    _require_name(common_name, "common name")
    _require_days(days)
    ca_cert = _load_cert(ca_cert_pem, "CA certificate")
    ca_key = _load_ca_key(ca_key_pem, ca_cert)
    _require_is_ca(ca_cert)
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    not_after = min(now + dt.timedelta(days=days), ca_cert.not_valid_after_utc)
    subject = x509.Name([
        *ca_cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, role),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([_EKU[role]]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .add_extension(_authority_key_id(ca_cert), critical=False)
    )
    if hosts:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([_general_name(h) for h in hosts]), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    return _key_pem(key), cert.public_bytes(serialization.Encoding.PEM)


def role_of(cert_pem: bytes) -> str | None:
    """The certificate's role (subject OU) if it is a known role whose EKU agrees, else None."""
    cert = _load_cert(cert_pem, "certificate")
    ous = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
    if len(ous) != 1:
        return None
    role = ous[0].value
    if not isinstance(role, str) or role not in ROLES:
        return None
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return None
    return role if _EKU[role] in eku else None


def node_common_name(node: int) -> str:
    """The subject CommonName of node ``node``'s certificate, as the ceremony issues it."""
    return f"node{node}"


def common_name_of(cert_pem: bytes) -> str:
    """The subject CommonName; raises PkiError if there is not exactly one."""
    cert = _load_cert(cert_pem, "certificate")
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(cns) != 1 or not isinstance(cns[0].value, str):
        raise PkiError("certificate subject must have exactly one CommonName")
    return cns[0].value


def verify_chain(cert_pem: bytes, ca_cert_pem: bytes, *,
                 now: dt.datetime | None = None) -> bool:
    """True iff ``cert_pem`` is a leaf signed by the CA and both are valid at ``now``.

    A peer's certificate that does not even parse is simply not valid (False); a CA
    certificate that does not parse is a local misconfiguration and raises PkiError.
    """
    ca = _load_cert(ca_cert_pem, "CA certificate")
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError:
        return False
    when = now if now is not None else _now()
    if not (_is_ca(ca) and _valid_at(ca, when) and _valid_at(cert, when)):
        return False
    if _is_ca(cert):
        return False
    try:
        # Checks issuer name == CA subject and the signature with the CA's public key.
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _require_name(value: str, what: str) -> None:
    if not value or not value.isprintable() or len(value) > 64:
        raise PkiError(f"{what} must be 1..64 printable characters")


def _require_days(days: int) -> None:
    if days < 1:
        raise PkiError(f"validity must be at least 1 day, got {days}")


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=cert_sign,
        crl_sign=cert_sign, encipher_only=False, decipher_only=False)


def _authority_key_id(ca_cert: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    try:
        ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(
            _ec_public(ca_cert))
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def _general_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        pass
    if not host or any(c.isspace() for c in host) or not host.isascii():
        raise PkiError(f"invalid host name {host!r}")
    return x509.DNSName(host)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _load_cert(pem: bytes, what: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(pem)
    except ValueError:
        raise PkiError(f"{what} is not a PEM X.509 certificate") from None


def _ec_public(cert: x509.Certificate) -> ec.EllipticCurvePublicKey:
    pub = cert.public_key()
    if not isinstance(pub, ec.EllipticCurvePublicKey):
        raise PkiError("CA certificate does not hold an EC public key")
    return pub


def _load_ca_key(pem: bytes, ca_cert: x509.Certificate) -> ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        # No detail: the parser's message could quote key material.
        raise PkiError("CA key is not an unencrypted PEM private key") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise PkiError("CA key is not an EC private key")
    if key.public_key().public_numbers() != _ec_public(ca_cert).public_numbers():
        raise PkiError("CA key does not match the CA certificate")
    return key


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def _require_is_ca(cert: x509.Certificate) -> None:
    if not _is_ca(cert):
        raise PkiError("issuer certificate is not a CA (basicConstraints CA:false)")


def _valid_at(cert: x509.Certificate, when: dt.datetime) -> bool:
    return cert.not_valid_before_utc <= when <= cert.not_valid_after_utc

