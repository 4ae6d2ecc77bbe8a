from __future__ import annotations

import datetime as dt
import ipaddress

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mpcnode.ceremony import pki
from mpcnode.ceremony.pki import ROLE_COORDINATOR, ROLE_NODE, PkiError


@pytest.fixture(scope="module")
def ca() -> tuple[bytes, bytes]:
    return pki.make_ca("test-cluster")


@pytest.fixture(scope="module")
def node_cert(ca: tuple[bytes, bytes]) -> tuple[bytes, bytes]:
    return pki.issue_certificate(*ca, "node1", ROLE_NODE, ["10.0.0.7", "node1.example", "::1"])


@pytest.fixture(scope="module")
def coord_cert(ca: tuple[bytes, bytes]) -> tuple[bytes, bytes]:
    return pki.issue_certificate(*ca, "coordinator", ROLE_COORDINATOR, [])


def _cert(pem: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem)


def test_ca_is_a_pathlen0_ca_with_ski(ca: tuple[bytes, bytes]) -> None:
    key_pem, cert_pem = ca
    cert = _cert(cert_pem)
    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca and bc.value.path_length == 0
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.key_cert_sign and ku.crl_sign and not ku.digital_signature
    ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    pub = cert.public_key()
    assert isinstance(pub, ec.EllipticCurvePublicKey)
    assert isinstance(pub.curve, ec.SECP256R1)
    assert ski == x509.SubjectKeyIdentifier.from_public_key(pub)
    cert.verify_directly_issued_by(cert)  # self-signed
    key = serialization.load_pem_private_key(key_pem, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.public_key().public_numbers() == pub.public_numbers()
    assert cert.not_valid_after_utc - cert.not_valid_before_utc >= dt.timedelta(days=3650)


def test_leaves_chain_to_the_ca(ca: tuple[bytes, bytes], node_cert: tuple[bytes, bytes],
                                coord_cert: tuple[bytes, bytes]) -> None:
    assert pki.verify_chain(node_cert[1], ca[1])
    assert pki.verify_chain(coord_cert[1], ca[1])
    aki = _cert(node_cert[1]).extensions.get_extension_for_class(
        x509.AuthorityKeyIdentifier).value
    ski = _cert(ca[1]).extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ski.digest


def test_roles_and_eku(node_cert: tuple[bytes, bytes], coord_cert: tuple[bytes, bytes],
                       ca: tuple[bytes, bytes]) -> None:
    assert pki.role_of(node_cert[1]) == ROLE_NODE
    assert pki.role_of(coord_cert[1]) == ROLE_COORDINATOR
    assert pki.role_of(ca[1]) is None
    node_eku = _cert(node_cert[1]).extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    coord_eku = _cert(coord_cert[1]).extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert list(node_eku.value) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert list(coord_eku.value) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert pki.common_name_of(node_cert[1]) == "node1"
    assert pki.common_name_of(coord_cert[1]) == "coordinator"
    leaf = _cert(node_cert[1])
    assert leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False


def test_sans_hold_ips_and_dns_names(node_cert: tuple[bytes, bytes]) -> None:
    san = _cert(node_cert[1]).extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("10.0.0.7"), ipaddress.ip_address("::1")]
    assert san.get_values_for_type(x509.DNSName) == ["node1.example"]


def test_leaf_key_matches_cert_and_serials_are_random(ca: tuple[bytes, bytes]) -> None:
    k1, c1 = pki.issue_certificate(*ca, "n", ROLE_NODE, ["localhost"])
    _, c2 = pki.issue_certificate(*ca, "n", ROLE_NODE, ["localhost"])
    key = serialization.load_pem_private_key(k1, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    pub = _cert(c1).public_key()
    assert isinstance(pub, ec.EllipticCurvePublicKey)
    assert key.public_key().public_numbers() == pub.public_numbers()
    assert _cert(c1).serial_number != _cert(c2).serial_number


def test_cert_from_another_ca_fails(node_cert: tuple[bytes, bytes]) -> None:
    other = pki.make_ca("other-cluster")
    assert not pki.verify_chain(node_cert[1], other[1])
    # Same subject name, different key: only the signature check can tell.
    twin = pki.make_ca("test-cluster")
    assert not pki.verify_chain(node_cert[1], twin[1])
    forged = pki.issue_certificate(*twin, "coordinator", ROLE_COORDINATOR, [])
    assert pki.role_of(forged[1]) == ROLE_COORDINATOR  # the role alone proves nothing


def test_verify_chain_checks_validity_period(ca: tuple[bytes, bytes],
                                             node_cert: tuple[bytes, bytes]) -> None:
    leaf = _cert(node_cert[1])
    assert pki.verify_chain(node_cert[1], ca[1], now=leaf.not_valid_before_utc)
    after = leaf.not_valid_after_utc + dt.timedelta(seconds=1)
    before = leaf.not_valid_before_utc - dt.timedelta(seconds=1)
    assert not pki.verify_chain(node_cert[1], ca[1], now=after)
    assert not pki.verify_chain(node_cert[1], ca[1], now=before)


def test_leaf_never_outlives_its_ca() -> None:
    short = pki.make_ca("short", days=30)
    _, cert = pki.issue_certificate(*short, "n", ROLE_NODE, [], days=825)
    assert _cert(cert).not_valid_after_utc <= _cert(short[1]).not_valid_after_utc


def test_verify_chain_rejects_ca_as_leaf_and_garbage(ca: tuple[bytes, bytes]) -> None:
    assert not pki.verify_chain(ca[1], ca[1])
    assert not pki.verify_chain(b"not a certificate", ca[1])
    with pytest.raises(PkiError, match="CA certificate"):
        pki.verify_chain(ca[1], b"garbage")


def test_verify_chain_rejects_a_leaf_signed_by_a_leaf(ca: tuple[bytes, bytes],
                                                       node_cert: tuple[bytes, bytes]) -> None:
    # A leaf's key signs a certificate naming the leaf as issuer: the "CA" is not a CA.
    leaf_key = serialization.load_pem_private_key(node_cert[0], password=None)
    assert isinstance(leaf_key, ec.EllipticCurvePrivateKey)
    leaf = _cert(node_cert[1])
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    child = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ROLE_COORDINATOR),
            x509.NameAttribute(NameOID.COMMON_NAME, "coordinator")]))
        .issuer_name(leaf.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(leaf_key, hashes.SHA256())
    ).public_bytes(serialization.Encoding.PEM)
    assert not pki.verify_chain(child, node_cert[1])
    assert not pki.verify_chain(child, ca[1])
    with pytest.raises(PkiError, match="not a CA"):
        pki.issue_certificate(node_cert[0], node_cert[1], "x", ROLE_NODE, [])


def test_role_needs_matching_eku(ca: tuple[bytes, bytes]) -> None:
    ca_key = serialization.load_pem_private_key(ca[0], password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    # OU says coordinator, EKU says server: a mislabelled certificate gets no role.
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ROLE_COORDINATOR),
            x509.NameAttribute(NameOID.COMMON_NAME, "coordinator")]))
        .issuer_name(_cert(ca[1]).subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    ).public_bytes(serialization.Encoding.PEM)
    assert pki.verify_chain(cert, ca[1])
    assert pki.role_of(cert) is None


def test_issue_rejects_bad_input(ca: tuple[bytes, bytes]) -> None:
    with pytest.raises(PkiError, match="unknown role"):
        pki.issue_certificate(*ca, "n", "mpc-admin", [])
    with pytest.raises(PkiError, match="invalid host"):
        pki.issue_certificate(*ca, "n", ROLE_NODE, ["bad host"])
    with pytest.raises(PkiError, match="common name"):
        pki.issue_certificate(*ca, "", ROLE_NODE, [])
    other_key, _ = pki.make_ca("other")
    with pytest.raises(PkiError, match="does not match"):
        pki.issue_certificate(other_key, ca[1], "n", ROLE_NODE, [])
    with pytest.raises(PkiError, match="not an unencrypted PEM"):
        pki.issue_certificate(b"junk", ca[1], "n", ROLE_NODE, [])
    with pytest.raises(PkiError, match="at least 1 day"):
        pki.make_ca("c", days=0)


def test_common_name_of_needs_one_cn(ca: tuple[bytes, bytes]) -> None:
    assert pki.common_name_of(ca[1]) == "test-cluster CA"
    with pytest.raises(PkiError, match="not a PEM"):
        pki.common_name_of(b"junk")
