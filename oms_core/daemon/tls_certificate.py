"""The OMS's TLS server certificate, issued by the cluster CA.

Its role is its own (subject OU ``oms``, ExtendedKeyUsage serverAuth only), not one of the
signer cluster's roles: a node accepts calls only from the ``mpc-coordinator`` role with
clientAuth, so this certificate can never call a signer node. Clients of the OMS verify
it with the cluster's public ca.pem. Users authenticate with WebAuthn and a session token,
not with client certificates.
"""

from __future__ import annotations

import datetime as dt
import ipaddress

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from oms_core.oms_core_errors import OmsCoreError

ROLE_OMS = "oms"
BACKDATE = dt.timedelta(minutes=5)  # tolerated clock skew between hosts


class CertificateError(OmsCoreError, ValueError):
    """The CA files cannot issue the OMS certificate (wrong key, not a CA, bad host)."""


def issue_oms_certificate(ca_key_pem: bytes, ca_cert_pem: bytes, hosts: list[str], *,
                          now: dt.datetime, days: int = 825) -> tuple[bytes, bytes]:
    """A new P-256 key and its certificate for ``hosts``; returns (key PEM, cert PEM)."""
    if not hosts:
        raise CertificateError("the OMS certificate needs at least one host name or IP")
    ca_cert, ca_key = _load_ca(ca_key_pem, ca_cert_pem)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([
        *ca_cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ROLE_OMS),
        x509.NameAttribute(NameOID.COMMON_NAME, "oms"),
    ])
    ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(min(now + dt.timedelta(days=days), ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=False,
            crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                       critical=False)
        .add_extension(x509.SubjectAlternativeName([_general_name(h) for h in hosts]),
                       critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return key_pem, cert.public_bytes(serialization.Encoding.PEM)


def _load_ca(ca_key_pem: bytes, ca_cert_pem: bytes
             ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    try:
        ca_cert = x509.load_pem_x509_certificate(ca_cert_pem)
    except ValueError:
        raise CertificateError("the CA certificate is not PEM X.509") from None
    try:
        constraints = ca_cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    except x509.ExtensionNotFound:
        raise CertificateError("the CA certificate is not a cluster CA") from None
    if not constraints.ca:
        raise CertificateError("the issuer certificate is not a CA")
    try:
        ca_key = serialization.load_pem_private_key(ca_key_pem, password=None)
    except (ValueError, TypeError):
        # No detail: the parser's message could quote key material.
        raise CertificateError("the CA key is not an unencrypted PEM private key") from None
    public = ca_cert.public_key()
    if (not isinstance(ca_key, ec.EllipticCurvePrivateKey)
            or not isinstance(public, ec.EllipticCurvePublicKey)
            or ca_key.public_key().public_numbers() != public.public_numbers()):
        raise CertificateError("the CA key does not match the CA certificate")
    return ca_cert, ca_key


def _general_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        pass
    if not host or not host.isascii() or any(c.isspace() for c in host):
        raise CertificateError(f"invalid host name {host!r}")
    return x509.DNSName(host)
