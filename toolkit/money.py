"""Formatted money as Discogs writes it (``"£2.50"``, ``"$1,234.56"``, ``"€1.234,56"``) to an ISO
currency code and a number.

``/users/{u}/collection/value`` answers such strings in the user's currency. Hand-written rather than
a library: price-parser and Babel parse amounts but neither maps Discogs' symbols and prefixes
(``CA$``, ``A$``, ``R$``) to ISO codes, which is most of the work here.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from toolkit.errors import MoneyFormatError

__all__ = ["MARKET_CURRENCIES", "MoneyFormatError", "format_money", "parse_money"]

#: The currencies Discogs accepts as ``curr_abbr`` (and sells in).
MARKET_CURRENCIES: tuple[str, ...] = (
    "USD", "GBP", "EUR", "CAD", "AUD", "JPY", "CHF", "MXN", "BRL", "NZD", "SEK", "ZAR",
)  # fmt: skip

#: Prefixes and suffixes (longest first where one starts another) -> ISO code.
_SYMBOLS: tuple[tuple[str, str], ...] = (
    ("CA$", "CAD"),
    ("C$", "CAD"),
    ("A$", "AUD"),
    ("AU$", "AUD"),
    ("NZ$", "NZD"),
    ("MX$", "MXN"),
    ("R$", "BRL"),
    ("US$", "USD"),
    ("$", "USD"),
    ("£", "GBP"),
    ("€", "EUR"),
    ("¥", "JPY"),
    ("CHF", "CHF"),
    ("SEK", "SEK"),
    ("kr", "SEK"),
    ("ZAR", "ZAR"),
    ("R", "ZAR"),
)
_CODES = frozenset(MARKET_CURRENCIES)
_NUMBER = re.compile(r"[0-9][0-9.,'\u00a0 ]*")
#: How :func:`format_money` writes each currency: (prefix, suffix, decimals, thousands, point).
_STYLES: dict[str, tuple[str, str, int, str, str]] = {
    "USD": ("$", "", 2, ",", "."),
    "GBP": ("£", "", 2, ",", "."),
    "EUR": ("€", "", 2, ".", ","),
    "JPY": ("¥", "", 0, ",", "."),
    "CAD": ("CA$", "", 2, ",", "."),
    "AUD": ("A$", "", 2, ",", "."),
    "CHF": ("CHF", "", 2, "'", "."),
    "MXN": ("MX$", "", 2, ",", "."),
    "BRL": ("R$", "", 2, ".", ","),
    "NZD": ("NZ$", "", 2, ",", "."),
    "SEK": ("", " kr", 2, "\u00a0", ","),
    "ZAR": ("R", "", 2, ",", "."),
}


def _currency(text: str) -> tuple[str, str]:
    """(ISO code, the text without its currency marker)."""
    stripped = text.strip()
    if stripped[:3].upper() in _CODES:
        return stripped[:3].upper(), stripped[3:]
    if stripped[-3:].upper() in _CODES:
        return stripped[-3:].upper(), stripped[:-3]
    for marker, code in _SYMBOLS:
        if stripped.startswith(marker):
            return code, stripped[len(marker) :]
        if stripped.endswith(marker):
            return code, stripped[: -len(marker)]
    raise MoneyFormatError(f"unknown currency in the amount {text!r}")


def _number(text: str, original: str) -> Decimal:
    body = text.strip().replace("\u00a0", "").replace(" ", "").replace("'", "")
    negative = body.startswith("-")
    body = body.lstrip("-").strip()
    if not body or not _NUMBER.fullmatch(body):
        raise MoneyFormatError(f"no amount in {original!r}")
    last_dot, last_comma = body.rfind("."), body.rfind(",")
    if last_dot >= 0 and last_comma >= 0:
        point = "." if last_dot > last_comma else ","
    elif last_dot >= 0 or last_comma >= 0:
        mark = "." if last_dot >= 0 else ","
        tail = len(body) - body.rfind(mark) - 1
        # One mark with exactly three digits after it, or several of it: thousands ("¥1,234").
        point = "" if body.count(mark) > 1 or tail == 3 else mark
    else:
        point = ""
    thousands = {".", ","} - {point}
    for mark in thousands:
        body = body.replace(mark, "")
    if point == ",":
        body = body.replace(",", ".")
    try:
        value = Decimal(body)
    except InvalidOperation:
        raise MoneyFormatError(f"no amount in {original!r}") from None
    return -value if negative else value


def parse_money(text: str) -> tuple[str, float]:
    """``(ISO code, amount)`` of a formatted amount: ``"£2.50"`` -> ``("GBP", 2.5)``.

    Knows the symbols and prefixes Discogs uses (``$ £ € ¥ CA$ A$ NZ$ MX$ R$ R CHF kr``) and ISO
    codes before or after the number; ``1,234.56``, ``1.234,56``, ``1 234,56`` and ``1'234.56``.
    Anything else raises :class:`MoneyFormatError`.
    """
    if not isinstance(text, str) or not text.strip():
        raise MoneyFormatError(f"no amount in {text!r}")
    code, rest = _currency(text)
    return code, float(_number(rest, text))


def format_money(amount: float, currency: str) -> str:
    """``amount`` written the way Discogs shows it in ``currency`` (the simulator's answers)."""
    prefix, suffix, decimals, thousands, point = _STYLES[currency]
    whole = f"{abs(amount):,.{decimals}f}"
    whole = whole.replace(",", "\x00").replace(".", point).replace("\x00", thousands)
    return f"{'-' if amount < 0 else ''}{prefix}{whole}{suffix}"
