"""Human units for counts and bytes: ``300M`` in, ``4.089 GMACs`` out.

Counts use decimal SI prefixes (k, M, G, T, P: powers of 1000), as every
FLOPs table does; bytes use binary prefixes (KiB, MiB, GiB: powers of 1024).
Parsing is exact: ``"4.1G"`` is the integer 4,100,000,000.
"""
from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

__all__ = ["parse_count", "parse_bytes", "format_count", "format_bytes"]

_SI = {"": 1, "k": 10**3, "K": 10**3, "m": 10**6, "M": 10**6, "g": 10**9, "G": 10**9,
       "t": 10**12, "T": 10**12, "p": 10**15, "P": 10**15}
_BIN = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_NUM = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([a-zA-Z]*)\s*$")


def parse_count(text: str | int | float) -> int:
    """Parse ``"300M"``, ``"4.1G"``, ``"5e6"``, ``"1200k"`` (optionally followed by
    FLOPs/MACs/params) into an exact int.

    Examples
    --------
    >>> parse_count("300M"), parse_count("4.1G"), parse_count("2.5 GMACs")
    (300000000, 4100000000, 2500000000)
    """
    if isinstance(text, (int, float)):
        return int(text)
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
    try:
        value = Decimal(number) * _SI[suffix]
    except InvalidOperation:
        raise ValueError(f"not a count: {text!r}") from None
    if value != value.to_integral_value():
        raise ValueError(f"{text!r} is not a whole number")
    return int(value)


def parse_bytes(text: str | int) -> int:
    """Parse ``"512KiB"``, ``"2MiB"``, ``"1.5GB"`` (GB = 10^9) or ``"1000"`` into bytes.

    Examples
    --------
    >>> parse_bytes("2MiB"), parse_bytes("1.5GB"), parse_bytes("320k")
    (2097152, 1500000000, 320000)
    """
    if isinstance(text, int):
        return text
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
    value = Decimal(number) * scale
    if value != value.to_integral_value():
        raise ValueError(f"{text!r} is not a whole number of bytes")
    return int(value)


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
