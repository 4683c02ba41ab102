"""How numbers and times are written everywhere: pages, widgets, alerts and emails."""

from __future__ import annotations

from datetime import UTC, datetime

MISSING = "\u2013"
_SUFFIXES = ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K"))


def usd(value: float | None) -> str:
    """Compact dollars: $950, $12.5K, $48.2M, $1.05B, $5M."""
    if value is None:
        return MISSING
    sign = "-" if value < 0 else ""
    value = abs(float(value))
    for size, suffix in _SUFFIXES:
        if value >= size * 0.9995:
            scaled = value / size
            digits = 2 if scaled < 10 else 1 if scaled < 100 else 0
            text = f"{scaled:.{digits}f}"
            if "." in text:
                text = text.rstrip("0").rstrip(".")
            return f"{sign}${text}{suffix}"
    return f"{sign}${value:,.0f}"


def price(value: float | None) -> str:
    """A price with the decimals its size needs: 97,412.5, 3,312.45, 0.04521."""
    if value is None:
        return MISSING
    value = float(value)
    size = abs(value)
    if size >= 10_000:
        return f"{value:,.1f}"
    if size >= 10:
        return f"{value:,.2f}"
    if size >= 0.1:
        return f"{value:,.4f}"
    return f"{value:.8f}".rstrip("0").rstrip(".") if value else "0"


def pct(value: float | None) -> str:
    """A signed percentage: +1.40%, -2.10%."""
    if value is None:
        return MISSING
    return f"{float(value):+.2f}%"


def distance(value: float | None) -> str:
    """A distance from the price in words: '2.10% below', '1.40% above', 'at the price'."""
    if value is None:
        return MISSING
    value = float(value)
    if value == 0:
        return "at the price"
    return f"{abs(value):.2f}% {'below' if value < 0 else 'above'}"


def share(value: float | None) -> str:
    """A fraction as a percentage: 0.369 -> 36.9%."""
    if value is None:
        return MISSING
    return f"{float(value) * 100:.1f}%"


def ms_utc(value: int | None) -> datetime | None:
    """Epoch milliseconds as an aware UTC datetime (for the date filter)."""
    if value is None:
        return None
    return datetime.fromtimestamp(int(value) / 1000, tz=UTC)


def duration(value_ms: int | None) -> str:
    """Milliseconds in the largest whole unit: 5 min, 24 h, 7 d; None is infinite."""
    if value_ms is None:
        return "∞ (no turnover)"
    value_ms = int(value_ms)
    for size, unit in ((86_400_000, "d"), (3_600_000, "h"), (60_000, "min"), (1_000, "s")):
        if value_ms >= size and value_ms % size == 0:
            return f"{value_ms // size} {unit}"
    return f"{value_ms / 3_600_000:.2f} h"


def age(seconds: int | None) -> str:
    """How long ago, briefly: 'just now', '3 min ago', '2 h 5 min ago', '3 d ago'."""
    if seconds is None:
        return MISSING
    seconds = int(seconds)
    if seconds < 60:
        return "just now"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min ago"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min ago" if minutes else f"{hours} h ago"
    return f"{hours // 24} d ago"


def minutes_in_words(value: int) -> str:
    """A duration in minutes in words: '45 minutes', '1 hour', '2 hours 30 minutes'."""
    hours, rest = divmod(int(value), 60)
    parts = []
    if hours:
        parts.append(f"{hours} hour{'s' if hours != 1 else ''}")
    if rest or not hours:
        parts.append(f"{rest} minute{'s' if rest != 1 else ''}")
    return " ".join(parts)


def factor(value: float | None) -> str:
    """A multiplier after a times sign: two decimals from 1 up (1.80), else three significant
    digits (0.00237)."""
    if value is None:
        return MISSING
    value = float(value)
    if value == 0 or abs(value) >= 1:
        return f"\u00d7{value:.2f}"
    return f"\u00d7{value:.3g}"
