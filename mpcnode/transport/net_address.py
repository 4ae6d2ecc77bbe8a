"""Network addresses as configs write them: ``host:port``, IPv6 as ``[addr]:port``.

One parser for every config that names a listening or dialled address (node.toml,
cluster.toml, oms.toml), so a value one of them accepts the others accept too.
"""

from __future__ import annotations

import ipaddress
import re

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
