"""The root of every exception class of ``ethereum`` (transactions, ERC-20 calls)."""

from __future__ import annotations


class EthereumError(Exception):
    """Root of every error raised by ``ethereum``."""
