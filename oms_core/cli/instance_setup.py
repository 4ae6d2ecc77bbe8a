"""``oms init``: a new OMS instance directory next to a signer cluster.

    OUT/oms.toml                       the configuration ``oms serve`` reads
    OUT/audit.key, audit.passphrase    the audit signing key (encrypted PKCS#8, 0600) and
                                       its passphrase (0600; production keeps it in a
                                       secret store instead)
    OUT/audit.pub.pem                  what auditors verify tree heads with
    OUT/tls/oms.pem, oms.key (0600)    the OMS server certificate, issued by the cluster CA
    OUT/people/USER.authenticator.json DEMO ONLY software authenticators (0600)
    OUT/bootstrap-bundle.json          DEMO ONLY the first policy bundle, signed with the
                                       local cluster's admin keys

The certificate needs the cluster CA key (DIR/ca/ca.key), which a real ceremony moves
offline: issue it where the key is kept, or choose plaintext on loopback (``tls=False``).

DEMO ONLY people: real approvers register a hardware authenticator through a browser.
For a local cluster, ``demo_people`` enrols software authenticators (their private keys
sit in clear files) and signs the bootstrap bundle with the admin keys the local ceremony
left in DIR/admins. People with the admin role must be the cluster's admins (the ids in
cluster.toml), since only those keys count for a policy change.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import zero_trust.policy
from mpcnode.ceremony.cluster_file import ClusterConfig, load_cluster_config
from mpcnode.state.atomic_file import fsync_dir, write_private, write_public
from mpcnode.transport.net_address import parse_address
from oms_core.app.bundle_signing import load_admin_keys, make_bundle, signed_bundle_json
from oms_core.app.oms_config import OmsSettings, TlsFiles, dump_settings
from oms_core.audit.signing_key import AuditSigner, write_public_key, write_signing_key
from oms_core.daemon.oms_server import check_listen
from oms_core.daemon.tls_certificate import issue_oms_certificate
from oms_core.oms_core_errors import OmsCoreError
from zero_trust.authorization import RelyingParty
from zero_trust.policy.document import read_policy_file

EXAMPLE_POLICY = Path(zero_trust.policy.__file__).parent / "examples" / "default_policy.toml"
DEMO_RP = RelyingParty("oms.localhost", "https://oms.localhost")
RandomBytes = Callable[[int], bytes]


class SetupError(OmsCoreError):
    """The instance cannot be set up as asked; the message says what to change."""


@dataclass(frozen=True)
class InitOptions:
    out: Path
    cluster_dir: Path
    key_id: bytes
    listen: str = "127.0.0.1:7600"
    rp: RelyingParty = DEMO_RP
    prices: Mapping[str, Decimal] = field(default_factory=lambda: {"ETH": Decimal(2000)})
    tls: bool = True
    tls_hosts: tuple[str, ...] = ()  # extra names in the certificate
    policy_file: Path | None = None  # the demo bootstrap policy (default: the example)
    demo_people: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (user id, roles)
    wallet_value_usd: Decimal = Decimal(0)


def init_instance(options: InitOptions, *, random_bytes: RandomBytes,
                  now: dt.datetime) -> OmsSettings:
    """Write a new instance directory; refuses a directory that is not empty."""
    cluster = _load_cluster(options.cluster_dir)
    if not options.key_id:
        raise SetupError("--key-id must name the threshold key (hex)")
    try:
        parse_address(options.listen)  # a real port: the config is read again later
        check_listen(options.listen, tls=options.tls)
    except ValueError as exc:
        raise SetupError(f"--listen {options.listen}: {exc}") from None
    out = options.out.absolute()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise SetupError(f"{out} is not empty; choose a new directory")
    out.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    # Built beside OUT and renamed into place at the end: a refusal or a crash half-way
    # leaves no keys behind, and the same command can simply be run again.
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.init-", dir=out.parent))
    try:
        settings = _write_instance(options, cluster, work, out, random_bytes, now)
        os.chmod(work, 0o700)
        os.replace(work, out)  # an empty OUT is replaced; a non-empty one fails here
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    fsync_dir(out.parent)
    return settings


def _write_instance(options: InitOptions, cluster: ClusterConfig, work: Path, out: Path,
                    random_bytes: RandomBytes, now: dt.datetime) -> OmsSettings:
    """Write every file into ``work``; the settings name them where they will be, in
    ``out`` (oms.toml holds paths relative to its own directory, so they stay right)."""
    passphrase = base64.urlsafe_b64encode(random_bytes(32)).rstrip(b"=")
    write_private(work / "audit.passphrase", passphrase + b"\n")
    audit = AuditSigner.from_seed(random_bytes(32))
    write_signing_key(work / "audit.key", audit, passphrase)
    write_public_key(work / "audit.pub.pem", audit.public_key)
    tls = _issue_tls(options, work, out, now) if options.tls else None
    bundle = _demo_bootstrap(options, cluster, work, random_bytes)
    settings = OmsSettings(
        path=out / "oms.toml", db=out / "oms.sqlite3", listen=options.listen,
        key_id=options.key_id, cluster_dir=options.cluster_dir.absolute(), rp=options.rp,
        prices=dict(options.prices), audit_key=out / "audit.key",
        audit_passphrase_file=out / "audit.passphrase",
        audit_public_key=out / "audit.pub.pem", tls=tls,
        bootstrap_bundle=None if bundle is None else out / bundle,
        wallet_value_usd=options.wallet_value_usd)
    write_public(work / "oms.toml", dump_settings(settings).encode("utf-8"))
    return settings


def _load_cluster(cluster_dir: Path) -> ClusterConfig:
    try:
        return load_cluster_config(cluster_dir / "cluster.toml")
    except ValueError as exc:
        raise SetupError(f"not a usable cluster directory: {exc}") from None


def _issue_tls(options: InitOptions, work: Path, out: Path, now: dt.datetime) -> TlsFiles:
    ca_cert = options.cluster_dir.absolute() / "ca" / "ca.pem"
    ca_key = options.cluster_dir.absolute() / "ca" / "ca.key"
    if not ca_key.is_file():
        raise SetupError(f"the cluster CA key is not at {ca_key} (moved offline?): issue the "
                         "OMS certificate where the CA key is kept, or pass --no-tls for a "
                         "loopback-only demo")
    host, _ = parse_address(options.listen)
    hosts = [h for h in (host, "127.0.0.1", "localhost", *options.tls_hosts)
             if h not in ("0.0.0.0", "::")]
    key_pem, cert_pem = issue_oms_certificate(ca_key.read_bytes(), ca_cert.read_bytes(),
                                              list(dict.fromkeys(hosts)), now=now)
    (work / "tls").mkdir(mode=0o700)
    write_private(work / "tls" / "oms.key", key_pem)
    write_public(work / "tls" / "oms.pem", cert_pem)
    return TlsFiles(out / "tls" / "oms.pem", out / "tls" / "oms.key", ca_cert)


def _demo_bootstrap(options: InitOptions, cluster: ClusterConfig, work: Path,
                    random_bytes: RandomBytes) -> str | None:
    """DEMO ONLY: software authenticators and the first bundle, signed by local admins;
    returns the bundle's file name."""
    # Imported here: they load the TEST AND DEMO ONLY package, which ``oms serve`` refuses.
    from oms_core.cli.authenticator_file import save_authenticator
    from oms_core.demo.demo_people import enrol

    if not options.demo_people:
        if options.policy_file is not None:
            raise SetupError("a bootstrap policy needs its approvers: enrol them with "
                             "--demo-person (DEMO ONLY) or sign a bundle elsewhere")
        return None
    _check_admins(options.demo_people, cluster)
    admin_keys = load_admin_keys(options.cluster_dir)
    if len(admin_keys) < cluster.admin_quorum:
        raise SetupError(f"{options.cluster_dir / 'admins'} holds {len(admin_keys)} admin "
                         f"keys; the bootstrap bundle needs {cluster.admin_quorum}")
    policy = read_policy_file(options.policy_file or EXAMPLE_POLICY)
    registry, people = enrol(options.rp, list(options.demo_people), seed=random_bytes(32))
    (work / "people").mkdir(mode=0o700)
    for user_id, person in people.items():
        save_authenticator(work / "people" / f"{user_id}.authenticator.json",
                           person.authenticator)
    signed = signed_bundle_json(make_bundle(policy, options.rp, registry), admin_keys)
    write_public(work / "bootstrap-bundle.json", signed)
    return "bootstrap-bundle.json"


def _check_admins(people: Sequence[tuple[str, Sequence[str]]], cluster: ClusterConfig) -> None:
    strangers = sorted(u for u, roles in people if "admin" in roles and u not in cluster.admins)
    if strangers:
        raise SetupError(f"{', '.join(strangers)}: people with the admin role must be the "
                         f"cluster's admins ({', '.join(sorted(cluster.admins))}), whose keys "
                         "the ceremony fixed")


def parse_person(text: str) -> tuple[str, tuple[str, ...]]:
    """``tina:trader`` or ``tom:trader,risk_officer`` → (user id, roles)."""
    user, sep, roles = text.partition(":")
    names = tuple(r.strip() for r in roles.split(",") if r.strip())
    if not sep or not user or not names:
        raise SetupError(f"--demo-person {text!r} must be USER:ROLE[,ROLE…]")
    return user, names
