"""Formatting for the pages: dollars, prices, percentages, times, model parameters."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from django import template
from django.utils.html import escape
from django.utils.safestring import mark_safe

register = template.Library()
MISSING = "\u2013"

_SUFFIXES = ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K"))
LONG_SHARE_LABELS = {
    "taker": "taker buy share of volume",
    "ratio": "global long/short account ratio",
    "candle": "candle direction",
    "even": "even split",
}


@register.filter
def usd(value: float | None) -> str:
    """Compact dollars: $950, $12.5K, $48.2M, $1.05B."""
    if value is None:
        return MISSING
    sign = "-" if value < 0 else ""
    value = abs(float(value))
    for size, suffix in _SUFFIXES:
        if value >= size * 0.9995:
            scaled = value / size
            digits = 2 if scaled < 10 else 1 if scaled < 100 else 0
            return f"{sign}${scaled:.{digits}f}{suffix}"
    return f"{sign}${value:,.0f}"


@register.filter
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


@register.filter
def pct(value: float | None) -> str:
    """A signed percentage: +1.40%, -2.10%."""
    if value is None:
        return MISSING
    return f"{float(value):+.2f}%"


@register.filter
def distance(value: float | None) -> str:
    """A distance from the price in words: '2.10% below', '1.40% above', 'at the price'."""
    if value is None:
        return MISSING
    value = float(value)
    if value == 0:
        return "at the price"
    return f"{abs(value):.2f}% {'below' if value < 0 else 'above'}"


@register.filter
def share(value: float | None) -> str:
    """A fraction as a percentage: 0.369 -> 36.9%."""
    if value is None:
        return MISSING
    return f"{float(value) * 100:.1f}%"


@register.filter
def ms_utc(value: int | None) -> datetime | None:
    """Epoch milliseconds as an aware UTC datetime (for the date filter)."""
    if value is None:
        return None
    return datetime.fromtimestamp(int(value) / 1000, tz=UTC)


@register.filter
def duration(value_ms: int | None) -> str:
    """Milliseconds in the largest whole unit: 5 min, 24 h, 7 d; None is infinite."""
    if value_ms is None:
        return "∞ (no turnover)"
    value_ms = int(value_ms)
    for size, unit in ((86_400_000, "d"), (3_600_000, "h"), (60_000, "min"), (1_000, "s")):
        if value_ms >= size and value_ms % size == 0:
            return f"{value_ms // size} {unit}"
    return f"{value_ms / 3_600_000:.2f} h"


@register.filter
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


@register.inclusion_tag("maps/_params.html")
def model_params(params: dict, last_close: float | None = None) -> dict:
    """The model parameters a snapshot was computed with, as labelled rows."""
    tiers = params.get("tiers") or []
    rows = [
        (
            "Leverage tiers",
            " · ".join(f"{t['leverage']:g}x {t['weight'] * 100:.0f}%" for t in tiers),
        ),
        ("Maintenance margin", f"{float(params.get('mmr', 0)) * 100:.2f}%"),
        ("Long share", LONG_SHARE_LABELS.get(params.get("long_share"), params.get("long_share"))),
        ("Mean holding time", duration(params.get("holding_ms"))),
        ("Bin width", _bin_width(params.get("bin_bps"), last_close)),
        ("Step", duration(params.get("step_ms"))),
    ]
    return {"rows": [(label, value) for label, value in rows if value]}


def _bin_width(bps: float | None, last_close: float | None) -> str:
    if bps is None:
        return ""
    text = f"{float(bps):g} bps"
    if last_close:
        text += f" (≈ {price(float(bps) * float(last_close) / 1e4)})"
    return text


_INLINE = (
    (re.compile(r"\*\*([^*]+)\*\*"), r"<strong>\1</strong>"),
    (re.compile(r"(?<![\w*])\*([^*\s][^*]*)\*(?![\w*])"), r"<em>\1</em>"),
    (re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)"), r'<a href="\2">\1</a>'),
)
_LINK_TARGETS = {"model.md": "/model/", "api.md": "/api/"}


def _inline(text: str) -> str:
    """Escape, then the inline marks: `code`, **bold**, *italic*, [links](url)."""
    parts = re.split(r"(`[^`]+`)", escape(text))
    out = []
    for part in parts:
        if part.startswith("`") and part.endswith("`") and len(part) > 1:
            out.append(f"<code>{part[1:-1]}</code>")
            continue
        for pattern, replacement in _INLINE:
            part = pattern.sub(replacement, part)
        out.append(part)
    html = "".join(out)
    for name, url in _LINK_TARGETS.items():
        html = html.replace(f'href="{name}"', f'href="{url}"')
    return html


@register.filter(needs_autoescape=False)
def markdown(text: str) -> str:
    """The small Markdown of our docs as HTML: headings, paragraphs, lists, tables, code blocks."""
    lines = str(text).splitlines()
    html: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith("```")), None)
            end = len(lines) if end is None else end
            html.append(f"<pre><code>{escape(chr(10).join(lines[i + 1 : end]))}</code></pre>")
            i = end + 1
        elif match := re.match(r"(#{1,4})\s+(.*)", line):
            level = len(match.group(1))
            html.append(f"<h{level}>{_inline(match.group(2))}</h{level}>")
            i += 1
        elif line.startswith("|"):
            i = _table(lines, i, html)
        elif re.match(r"\s*([-*]|\d+\.)\s+", line):
            i = _list(lines, i, html)
        elif line.strip():
            i = _paragraph(lines, i, html)
        else:
            i += 1
    return mark_safe("\n".join(html))


def _paragraph(lines: list[str], i: int, html: list[str]) -> int:
    block = []
    while (
        i < len(lines)
        and lines[i].strip()
        and not re.match(r"(#|```|\||\s*([-*]|\d+\.)\s)", lines[i])
    ):
        block.append(lines[i].strip())
        i += 1
    html.append(f"<p>{_inline(' '.join(block))}</p>")
    return i


def _list(lines: list[str], i: int, html: list[str]) -> int:
    """A list, with one level of indented sub-items."""
    ordered = bool(re.match(r"\s*\d+\.", lines[i]))
    items: list[tuple[str, list[str]]] = []
    while i < len(lines) and lines[i].strip():
        item = re.match(r"(\s*)([-*]|\d+\.)\s+(.*)", lines[i])
        if item and item.group(1) and items:
            items[-1][1].append(item.group(3))
        elif item:
            items.append((item.group(3), []))
        elif items and items[-1][1]:
            items[-1][1][-1] += " " + lines[i].strip()
        elif items:
            items[-1] = (items[-1][0] + " " + lines[i].strip(), items[-1][1])
        i += 1
    tag = "ol" if ordered else "ul"
    html.append(f"<{tag}>" + "".join(_item(text, subs) for text, subs in items) + f"</{tag}>")
    return i


def _item(text: str, subs: list[str]) -> str:
    inner = "".join(f"<li>{_inline(sub)}</li>" for sub in subs)
    return f"<li>{_inline(text)}{f'<ul>{inner}</ul>' if subs else ''}</li>"


def _table(lines: list[str], i: int, html: list[str]) -> int:
    rows = []
    while i < len(lines) and lines[i].startswith("|"):
        cells = [c.strip() for c in lines[i].strip().strip("|").split("|")]
        if not all(re.fullmatch(r":?-{3,}:?", c) for c in cells):
            rows.append(cells)
        i += 1
    head, body = rows[0], rows[1:]
    out = "<table><thead><tr>" + "".join(f"<th>{_inline(c)}</th>" for c in head) + "</tr></thead>"
    out += "<tbody>"
    for row in body:
        out += "<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in row) + "</tr>"
    html.append(out + "</tbody></table>")
    return i
