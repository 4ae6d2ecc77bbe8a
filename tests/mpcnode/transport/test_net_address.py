"""host:port as configs write it."""

from __future__ import annotations

import pytest

from mpcnode.transport.net_address import format_address, parse_address, valid_host


@pytest.mark.parametrize(("text", "expected"), [
    ("127.0.0.1:7101", ("127.0.0.1", 7101)), ("node-1.example:443", ("node-1.example", 443)),
    ("[::1]:9", ("::1", 9)), ("0.0.0.0:1", ("0.0.0.0", 1)),
])
def test_parse_address(text: str, expected: tuple[str, int]) -> None:
    assert parse_address(text) == expected
    assert format_address(*expected) == text


@pytest.mark.parametrize("text", [
    "host", ":80", "host:", "host:0", "host:65536", "host:8o", "::1:80", "[::1]80",
    "[nothost]:80", "-bad-:80", "a b:80",
])
def test_parse_address_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_address(text)


@pytest.mark.parametrize(("host", "ok"), [
    ("localhost", True), ("::1", True), ("a" * 63 + ".example", True), ("a" * 64, False),
    ("", False), ("under_score", False), ("x." * 127 + "x", False),
])
def test_valid_host(host: str, ok: bool) -> None:
    assert valid_host(host) is ok
