"""Human units for counts and bytes: ``300M`` in, ``4.089 GMACs`` out.

Counts use decimal SI prefixes (k, M, G, T, P: powers of 1000), as every
FLOPs table does; bytes use binary prefixes (KiB, MiB, GiB: powers of 1024).
Parsing is exact: ``"4.1G"`` is the integer 4,100,000,000.
"""
from __future__ import annotations

import math
import re
from decimal import MAX_EMAX, MIN_EMIN, Context, Decimal, InvalidOperation

__all__ = ["parse_count", "parse_bytes", "format_count", "format_bytes", "INT64_MAX"]

_SI = {"": 1, "k": 10**3, "K": 10**3, "m": 10**6, "M": 10**6, "g": 10**9, "G": 10**9,
       "t": 10**12, "T": 10**12, "p": 10**15, "P": 10**15}
_BIN = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_NUM = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([a-zA-Z]*)\s*$")

#: the largest count or size accepted: every count is an int64
INT64_MAX = (1 << 63) - 1


def _exact(text, number: str, scale: int, what: str, maximum: int) -> int:
    """``number * scale`` as an exact int in ``0..maximum``, else ``ValueError``.

    The magnitude is checked on the decimal exponent *before* any integer is
    built, so ``1e9999999999`` is refused at once instead of computing a
    ten-billion-digit number.
    """
    try:
        value = Decimal(number)
    except InvalidOperation:
        raise ValueError(f"not a {what}: {text!r}") from None
    if value and value.adjusted() + len(str(scale)) > len(str(maximum)) + 1:
        raise ValueError(f"{text!r} is too large: at most {maximum:,}")
    # exact arithmetic: enough digits for the literal, no underflow to zero
    ctx = Context(prec=len(number) + 40, Emax=MAX_EMAX, Emin=MIN_EMIN, traps=[InvalidOperation])
    value = ctx.multiply(value, Decimal(scale))
    if value != ctx.to_integral_value(value):
        raise ValueError(f"{text!r} is not a whole number" + (" of bytes" if what == "size" else ""))
    if value > maximum:
        raise ValueError(f"{text!r} is too large: at most {maximum:,}")
    return int(value)


def _from_number(text, what: str, maximum: int) -> int:
    """An int or float given directly: whole, finite and in ``0..maximum``."""
    if isinstance(text, bool):
        raise ValueError(f"not a {what}: {text!r}")
    if isinstance(text, float) and not (math.isfinite(text) and text.is_integer()):
        raise ValueError(f"not a {what}: {text!r} (a whole, finite number is needed)")
    value = int(text)
    if not 0 <= value <= maximum:
        raise ValueError(f"{what} {value:,} out of range: 0..{maximum:,}")
    return value


def parse_count(text: str | int | float, maximum: int = INT64_MAX) -> int:
    """Parse ``"300M"``, ``"4.1G"``, ``"5e6"``, ``"1200k"`` (optionally followed by
    FLOPs/MACs/params) into an exact int in ``0..maximum``.

    Fractions (``"1.5"``), infinities, NaN and anything above ``maximum``
    (by default the int64 range every count lives in) raise ``ValueError``.

    Examples
    --------
    >>> parse_count("300M"), parse_count("4.1G"), parse_count("2.5 GMACs")
    (300000000, 4100000000, 2500000000)
    >>> parse_count("1e400")
    Traceback (most recent call last):
    ...
    ValueError: '1e400' is too large: at most 9,223,372,036,854,775,807
    """
    if isinstance(text, (int, float)):
        return _from_number(text, "count", maximum)
    m = _NUM.match(str(text))
    if not m:
        raise ValueError(f"not a count: {text!r} (use e.g. 300M, 4.1G, 5e6)")
    number, suffix = m.groups()
    for word in ("flops", "macs", "params", "ops"):
        if suffix.lower().endswith(word):
            suffix = suffix[: -len(word)]
            break
    if suffix not in _SI:
        raise ValueError(f"unknown unit in {text!r}: use k, M, G, T or P")
    return _exact(text, number, _SI[suffix], "count", maximum)


def parse_bytes(text: str | int, maximum: int = INT64_MAX) -> int:
    """Parse ``"512KiB"``, ``"2MiB"``, ``"1.5GB"`` (GB = 10^9) or ``"1000"`` into
    bytes, an exact int in ``0..maximum``.

    Examples
    --------
    >>> parse_bytes("2MiB"), parse_bytes("1.5GB"), parse_bytes("320k")
    (2097152, 1500000000, 320000)
    """
    if isinstance(text, (int, float)):
        return _from_number(text, "size", maximum)
    m = _NUM.match(str(text))
    if not m:
        raise ValueError(f"not a size: {text!r} (use e.g. 512KiB, 2MiB, 1.5GB)")
    number, suffix = m.groups()
    s = suffix.lower()
    if s.endswith("ib") and s[:-2] in _BIN:
        scale = _BIN[s[:-2]]
    elif s.endswith("b") and s[:-1] in {k.lower() for k in _SI}:
        scale = _SI[s[:-1]]
    elif s in {k.lower() for k in _SI}:
        scale = _SI[s]
    else:
        raise ValueError(f"unknown unit in {text!r}: use B, KiB, MiB, GiB or kB, MB, GB")
    return _exact(text, number, scale, "size", maximum)


def format_count(n, unit: str = "", digits: int = 3) -> str:
    """``4089184000, "MACs" -> "4.089 GMACs"``; exact below 1000.

    Examples
    --------
    >>> format_count(4_089_184_256, "MACs"), format_count(950, "FLOPs"), format_count(3_504_872)
    ('4.089 GMACs', '950 FLOPs', '3.505 M')
    """
    n = int(n)
    sign = "-" if n < 0 else ""
    a = abs(n)
    for prefix, scale in (("P", 10**15), ("T", 10**12), ("G", 10**9), ("M", 10**6), ("k", 10**3)):
        if a >= scale:
            return f"{sign}{a / scale:.{digits}f} {prefix}{unit}".rstrip()
    return f"{n} {unit}".rstrip()


def format_bytes(n) -> str:
    """Bytes with binary prefixes: ``1536 -> "1.50 KiB"``.

    Examples
    --------
    >>> format_bytes(512), format_bytes(3 * 2**20)
    ('512 B', '3.00 MiB')
    """
    n = int(n)
    a = abs(n)
    for prefix, scale in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if a >= scale:
            return f"{n / scale:.2f} {prefix}"
    return f"{n} B"
