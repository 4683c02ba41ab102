"""Formatting for the pages: dollars, prices, percentages, times, model parameters."""

from __future__ import annotations

import re

from django import template
from django.utils.html import escape
from django.utils.safestring import mark_safe
from django.utils.text import slugify

from liqsite.assets import asset_url
from maps.formatting import age, distance, duration, factor, ms_utc, pct, price, share, usd

register = template.Library()
LONG_SHARE_LABELS = {
    "taker": "taker buy share of volume",
    "ratio": "global long/short account ratio",
    "candle": "candle direction",
    "even": "even split",
}


for _filter in (usd, price, pct, distance, share, ms_utc, duration, age, factor):
    register.filter(_filter.__name__, _filter)


@register.simple_tag
def asset(name: str) -> str:
    """A static file's URL naming its content, so browsers may keep it for a year."""
    return asset_url(name)


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
            code = escape(chr(10).join(lines[i + 1 : end]))
            html.append(f'<pre tabindex="0"><code>{code}</code></pre>')
            i = end + 1
        elif match := re.match(r"(#{1,4})\s+(.*)", line):
            level = len(match.group(1))
            # sections (##, ###) can be linked to: /model/#signals
            anchor = f' id="{slugify(match.group(2))}"' if level > 1 else ""
            html.append(f"<h{level}{anchor}>{_inline(match.group(2))}</h{level}>")
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
    cells = "".join(f"<th>{_inline(c)}</th>" for c in head)
    out = f'<table tabindex="0"><thead><tr>{cells}</tr></thead>'
    out += "<tbody>"
    for row in body:
        out += "<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in row) + "</tr>"
    html.append(out + "</tbody></table>")
    return i
