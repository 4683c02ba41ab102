"""Number formatting shared by alert messages, emails and templates."""

from __future__ import annotations

_SUFFIXES = ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k"))


def usd(value: float | None) -> str:
    """Compact dollars: $950, $12.5k, $3.2M, $1.05B."""
    if value is None:
        return "—"
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
    """A price as the pages write it (maps.templatetags.liq.price): 97,412.5, 3,312.45, 1.4521,
    0.0000123."""
    if value is None:
        return "—"
    value = float(value)
    magnitude = abs(value)
    if magnitude >= 10_000:
        return f"{value:,.1f}"
    if magnitude >= 10:
        return f"{value:,.2f}"
    if magnitude >= 0.1:
        return f"{value:,.4f}"
    if magnitude == 0:
        return "0"
    return f"{value:.8f}".rstrip("0").rstrip(".")


def pct(value: float | None) -> str:
    """A signed percentage with two decimals: +1.25%, -0.40%."""
    if value is None:
        return "—"
    return f"{float(value):+.2f}%"


def minutes(value: int) -> str:
    """A duration in minutes in words: '45 minutes', '1 hour', '2 hours 30 minutes'."""
    hours, rest = divmod(int(value), 60)
    parts = []
    if hours:
        parts.append(f"{hours} hour{'s' if hours != 1 else ''}")
    if rest or not hours:
        parts.append(f"{rest} minute{'s' if rest != 1 else ''}")
    return " ".join(parts)
