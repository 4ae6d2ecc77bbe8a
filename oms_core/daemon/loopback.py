"""Whether an address stays on this host: the one case where the OMS and its CLI accept
plaintext, since a bearer token and approvals then never cross a network."""

from __future__ import annotations

import ipaddress


def is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
