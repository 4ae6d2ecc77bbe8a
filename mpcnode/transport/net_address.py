"""Network addresses as configs write them: ``host:port``, IPv6 as ``[addr]:port``.

One parser for every config that names a listening or dialled address (node.toml,
cluster.toml, oms.toml), so a value one of them accepts the others accept too.
"""

from __future__ import annotations

import errno
import ipaddress
import re
import socket
from collections.abc import Callable

from mpcnode.core.errors import MpcnodeError

TLS13_ONLY_CIPHER_SUITES = "PSK-AES128-CBC-SHA"
"""For ``GRPC_SSL_CIPHER_SUITES``. grpcio has no API for a minimum TLS version
(grpc/grpc#37305). Restricting the TLS 1.2 cipher list to a PSK-only suite, which no peer
here can negotiate, leaves TLS 1.3 (whose suites this variable does not govern) as the only
handshake that completes. gRPC's core reads the variable when ``grpc`` is first imported,
so a daemon sets it before that (``mpcnode serve``: node_server; ``oms``: oms_cli)."""

GRPC_SERVER_OPTIONS: tuple[tuple[str, int], ...] = (("grpc.so_reuseport", 0),)
"""Options of every gRPC server: gRPC's default SO_REUSEPORT would let a second daemon
bind a port that a running one holds, and both would then answer on it."""


class ListenError(MpcnodeError, OSError):
    """A daemon cannot listen on its configured address (taken, or not this host's)."""


_HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


def parse_address(text: str) -> tuple[str, int]:
    """Split "host:port" (IPv6 as "[addr]:port"); raises ValueError if malformed."""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if not rest.startswith(":"):
            raise ValueError("IPv6 address must be written [addr]:port")
        port_text = rest[1:]
        ipaddress.IPv6Address(host)
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep or not valid_host(host) or ":" in host:
            raise ValueError("expected host:port")
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError("port must be 1..65535")
    return host, int(port_text)


def format_address(host: str, port: int) -> str:
    """The inverse of ``parse_address``: brackets around an IPv6 host."""
    try:
        if ipaddress.ip_address(host).version == 6:
            return f"[{host}]:{port}"
    except ValueError:
        pass
    return f"{host}:{port}"


def valid_host(host: str) -> bool:
    """An IP address, or a DNS name of well-formed labels (RFC 1123)."""
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    labels = host.split(".")
    return 0 < len(host) <= 253 and all(_HOST_LABEL.fullmatch(x) for x in labels)


def bind_port(add_port: Callable[[str], int], host: str, port: int) -> int:
    """Bind a gRPC server (``add_port``: its ``add_secure_port`` or ``add_insecure_port``)
    to ``host:port``; the port bound. A taken or foreign address raises ``ListenError``
    naming it, one line for the operator: the address is probed first, because gRPC
    reports a failed bind only as a generic RuntimeError."""
    address = format_address(host, port)
    refuse_taken(host, port)
    try:
        bound = add_port(address)
    except RuntimeError:
        bound = 0
    if not bound:
        raise ListenError(f"cannot listen on {address}")
    return bound


def refuse_taken(host: str, port: int) -> None:
    """``ListenError`` naming ``host:port`` unless this host could listen there now (port
    0, any free port, always can): a daemon calls it before it opens its state, so that a
    second copy started by mistake touches nothing of the running one's."""
    if not port:
        return
    address = format_address(host, port)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        infos = socket.getaddrinfo(host, port, family, socket.SOCK_STREAM)
    except OSError as exc:
        raise ListenError(f"cannot listen on {address}: {exc.strerror or exc}") from None
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gRPC binds
        try:
            probe.bind(infos[0][4])
        except OSError as exc:
            why = ("the address is already in use (is another daemon running?)"
                   if exc.errno == errno.EADDRINUSE else exc.strerror or str(exc))
            raise ListenError(f"cannot listen on {address}: {why}") from None


def free_port_runs(host: str, count: int, offsets: tuple[int, ...], preferred: int) -> int:
    """A base port B such that B + o + 1 … B + o + count are free on ``host`` for every
    offset o (a cluster's node ports, its metrics ports): ``preferred`` if it is, else one
    near a port the system hands out. Best effort: another process may take a port between
    this check and the bind, which the daemon then reports (``ListenError``)."""
    candidates = [preferred]
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
            candidates.append(int(s.getsockname()[1]))
    for base in candidates:
        if base + max(offsets) + count < 65536 and _all_free(host, base, count, offsets):
            return base
    raise ListenError(f"no {count} consecutive free ports on {host}")


def _all_free(host: str, base: int, count: int, offsets: tuple[int, ...]) -> bool:
    try:
        for o in offsets:
            for k in range(1, count + 1):
                refuse_taken(host, base + o + k)
    except ListenError:
        return False
    return True
