"""How a client command reaches the OMS: the server and its CA (from the options, else
from ``--config``), the session token file, and the WebAuthn relying party an
authenticator signs for. Shared by every command that talks to ``oms serve``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cryptography import x509

from mpcnode.transport.net_address import parse_address
from oms_core.app.oms_config import OmsSettings, load_settings
from oms_core.cli.instance_setup import DEMO_RP
from oms_core.cli.oms_client import DEFAULT_TIMEOUT_S, OmsClient
from oms_core.cli.option_values import InputFileError, read_input
from oms_core.cli.token_file import default_token_path
from zero_trust.authorization import RelyingParty

DEFAULT_SERVER = "127.0.0.1:7600"


def client_options() -> argparse.ArgumentParser:
    """The parent parser of every client command."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--config", type=Path, help="oms.toml: server, CA and relying party")
    p.add_argument("--server", help=f"host:port (default: from --config, else {DEFAULT_SERVER})")
    p.add_argument("--ca", type=Path, help="CA certificate (PEM) the server must chain to "
                                           "(default: from --config; none: plaintext, "
                                           "loopback only)")
    p.add_argument("--token-file", type=Path, help=f"default {default_token_path()}")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="seconds")
    p.add_argument("--json", action="store_true", help="print JSON")
    return p


def authenticator_options() -> argparse.ArgumentParser:
    """The parent parser of every command that makes a WebAuthn assertion."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--authenticator", type=Path, required=True,
                   help="DEMO ONLY software authenticator state file")
    p.add_argument("--rp-id", help="WebAuthn relying party id (default: from --config)")
    p.add_argument("--origin", help="web origin this client acts as (default: from --config)")
    return p


def open_client(args: argparse.Namespace) -> OmsClient:
    settings = _settings(args)
    server = args.server
    if server is None and settings is not None:
        host, port = parse_address(settings.listen)
        server = f"127.0.0.1:{port}" if host in ("0.0.0.0", "::") else settings.listen
    ca_path = args.ca or (settings.tls.ca if settings and settings.tls else None)
    return OmsClient(server or DEFAULT_SERVER,
                     ca_pem=_ca_pem(ca_path) if ca_path is not None else None,
                     timeout=args.timeout)


def _ca_pem(path: Path) -> bytes:
    """The CA certificate, checked here: gRPC would only say the handshake failed."""
    pem = read_input("--ca", path)
    try:
        x509.load_pem_x509_certificates(pem)
    except ValueError:
        raise InputFileError("--ca", path, "not a PEM certificate") from None
    return pem


def relying_party(args: argparse.Namespace) -> RelyingParty:
    settings = _settings(args)
    default = settings.rp if settings is not None else DEMO_RP
    return RelyingParty(args.rp_id or default.rp_id, args.origin or default.origin)


def token_path(args: argparse.Namespace) -> Path:
    path: Path = args.token_file or default_token_path()
    return path


def _settings(args: argparse.Namespace) -> OmsSettings | None:
    return load_settings(args.config) if getattr(args, "config", None) else None
