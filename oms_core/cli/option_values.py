"""Option values the ``oms`` commands parse, and the files they read; each error names the
option and its value (or the file)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from ethereum.addresses import parse_address
from ethereum.amounts import parse_amount
from oms_core.oms_core_errors import OmsCoreError


def hex_arg(option: str, text: str) -> bytes:
    body = text[2:] if text.startswith("0x") else text
    try:
        return bytes.fromhex(body)
    except ValueError:
        raise ValueError(f"{option} {text!r} is not hex") from None


def usd_arg(option: str, text: str) -> Decimal:
    return parse_amount(text, option)


def amount_arg(option: str, text: str) -> str:
    """An amount of an asset, checked here with the server's own parser so a typo is
    refused before anything is sent; the text goes on unchanged."""
    parse_amount(text, option)
    return text


def address_arg(option: str, text: str) -> str:
    """A ``0x`` address whose EIP-55 checksum (if mixed case) holds; sent unchanged."""
    parse_address(text, option)
    return text


def price_args(items: list[str]) -> dict[str, Decimal]:
    """``SYMBOL=USD`` items as a price table."""
    out: dict[str, Decimal] = {}
    for item in items:
        symbol, sep, price = item.partition("=")
        if not sep or not symbol:
            raise ValueError(f"--price {item!r} must be SYMBOL=USD")
        out[symbol] = usd_arg(f"--price {symbol}", price)
    return out


class InputFileError(OmsCoreError, ValueError):
    """A file given to a command cannot be read, or is not what the option expects."""

    def __init__(self, option: str, path: Path, problem: str) -> None:
        super().__init__(f"{option} {path}: {problem}")


def read_input(option: str, path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InputFileError(option, path, f"cannot read: {exc.strerror or exc}") from None


def read_text_input(option: str, path: Path) -> str:
    """The file as UTF-8 text; a binary file is refused naming the first bad byte."""
    data = read_input(option, path)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputFileError(option, path, f"not UTF-8 text (byte 0x{data[exc.start]:02x} "
                                           f"at offset {exc.start})") from None
