"""What the pages show of the stored positioning: the pair page's positioning panel."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlencode

from django.http import HttpRequest

from maps.models import Market, PositioningSnapshot
from maps.whales.screener import (
    COLOURS,
    COLUMNS,
    MAGNETS,
    Filters,
    ScreenerRow,
)
from maps.whales.stats import METRICS

LATEST_ANOMALIES = 6
SHORT_LABELS = {
    "oi_change": "OI change / step",
    "oi_change_1h": "OI change / hour",
    "taker_imbalance": "Taker imbalance",
    "volume": "Volume",
    "delta": "Whales vs retail",
    "liquidations": "Liquidations (1 h)",
}


def iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat().replace("+00:00", "Z")


def version(stored: PositioningSnapshot | None) -> str:
    """Names one computation of the stored positioning (what page ETags include)."""
    if stored is None:
        return "-"
    return f"{stored.pk}.{stored.version}.{int(stored.computed_at.timestamp() * 1000)}"


def colour_links(path: str, current: str, query: dict) -> list[dict]:
    """The heatmap's colour switch: by notional or by z-score, keeping the page's options."""
    links = []
    for mode, label in (("notional", "Notional"), ("zscore", "Z-score")):
        params = {**query, **({"colour": mode} if mode != "notional" else {})}
        links.append(
            {
                "mode": mode,
                "label": label,
                "url": f"{path}?{urlencode(params)}",
                "current": mode == current,
            }
        )
    return links


def positioning_out(positioning: dict) -> dict:
    return {**positioning, "time": iso(positioning.get("time"))}


@dataclass(frozen=True)
class PositioningPanel:
    whale_long_pct: float | None
    retail_long_pct: float | None
    delta: float | None
    delta_trend: float | None
    sentence: str
    anomalies: list[dict]
    as_of: datetime
    exchange: str

    @property
    def delta_text(self) -> str:
        return "" if self.delta is None else f"{self.delta:+.1f}"

    @property
    def trend_text(self) -> str:
        return "" if self.delta_trend is None else f"{self.delta_trend:+.1f}"


def positioning_panel(
    market: Market, stored: PositioningSnapshot | None
) -> PositioningPanel | None:
    """The panel's figures, and the latest anomalies newest first with readable names."""
    if stored is None:
        return None
    p = stored.positioning
    latest = [
        {
            **a,
            "when": datetime.fromtimestamp(a["time"] / 1000, tz=UTC),
            "label": SHORT_LABELS[a["metric"]],
            "title": METRICS[a["metric"]],
            "z_text": f"{a['z']:+.1f}",
        }
        for a in reversed(stored.anomalies[-LATEST_ANOMALIES:])
    ]
    return PositioningPanel(
        whale_long_pct=p.get("whale_long_pct"),
        retail_long_pct=p.get("retail_long_pct"),
        delta=p.get("delta"),
        delta_trend=p.get("delta_trend"),
        sentence=p.get("sentence", ""),
        anomalies=latest,
        as_of=stored.as_of,
        exchange=market.exchange.name,
    )


# The screener (the home and exchange pages' table).

SORT_KEYS = tuple(COLUMNS)
FILTER_RANGES = {
    "min_whale": (0.0, 100.0),
    "max_whale": (0.0, 100.0),
    "min_delta": (0.0, 100.0),
    "min_oi_z": (0.0, 100.0),
}
SEARCH_MAX = 24


@dataclass(frozen=True)
class ScreenerQuery:
    sort: str | None = None
    descending: bool = False
    colour: str = "own"
    filters: Filters = field(default_factory=Filters)

    def params(self, **changes: object) -> dict[str, str]:
        """The query's non-default options (what links carry), with `changes` applied."""
        values = {
            "sort": ("-" if self.descending else "") + self.sort if self.sort else "",
            "colour": "" if self.colour == "own" else self.colour,
            "magnet": "" if self.filters.magnet == "any" else self.filters.magnet,
            "q": self.filters.search,
            **{name: _number_text(getattr(self.filters, name)) for name in FILTER_RANGES},
        }
        values.update({k: str(v) for k, v in changes.items()})
        return {k: v for k, v in values.items() if v}


def _number_text(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def screener_query(request: HttpRequest) -> ScreenerQuery:
    """The screener's options from the query string; a bad one raises BadQuery naming it."""
    from maps.pages import BadQuery, query_choice  # maps.pages imports this module

    raw_sort = request.GET.get("sort", "").strip()
    descending = raw_sort.startswith("-")
    sort = raw_sort.lstrip("-") or None
    if sort is not None and sort not in SORT_KEYS:
        allowed = [*SORT_KEYS, *(f"-{k}" for k in SORT_KEYS)]
        message = (
            f"sort={raw_sort!r} is not allowed: use one of {', '.join(SORT_KEYS)} "
            "(prefix - for descending)"
        )
        raise BadQuery(message, "sort", allowed)
    colour = query_choice(request, "colour", list(COLOURS), "own")
    magnet = query_choice(request, "magnet", list(MAGNETS), "any")
    numbers = {
        name: _query_number(request, name, *bounds) for name, bounds in FILTER_RANGES.items()
    }
    search = request.GET.get("q", "").strip()
    if len(search) > SEARCH_MAX or not all(c.isalnum() or c in "-_/" for c in search):
        message = f"q={search[:40]!r} is not allowed: use up to {SEARCH_MAX} letters or digits"
        raise BadQuery(message, "q", [])
    return ScreenerQuery(sort, descending, colour, Filters(magnet=magnet, search=search, **numbers))


def _query_number(request: HttpRequest, name: str, low: float, high: float) -> float | None:
    from maps.pages import BadQuery

    raw = request.GET.get(name, "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or not low <= value <= high:
        message = f"{name}={raw[:40]!r} is not allowed: use a number from {low:g} to {high:g}"
        raise BadQuery(message, name, [])
    return value


def screener_row(
    key: int, market: Market, snapshot, stored: PositioningSnapshot | None
) -> ScreenerRow:
    """One market's screener row from its stored map snapshot and positioning."""
    figures = stored.figures if stored is not None else {}
    positioning = stored.positioning if stored is not None else {}
    latest_z = stored.latest_z if stored is not None else {}
    proximity = snapshot.proximity if snapshot is not None else {}
    below, above = proximity.get("long"), proximity.get("short")
    cascade = figures.get("last_cascade")
    values = {
        "price": snapshot.last_close if snapshot is not None else figures.get("price"),
        "change": figures.get("change_24h_pct"),
        "long_distance": below["distance_pct"] if below else None,
        "long_usd": below["notional_usd"] if below else None,
        "short_distance": above["distance_pct"] if above else None,
        "short_usd": above["notional_usd"] if above else None,
        "magnet": proximity.get("magnet"),
        "whale_long": positioning.get("whale_long_pct"),
        "delta": positioning.get("delta"),
        "oi_z": latest_z.get("oi_change_1h"),
        "funding": figures.get("funding_rate"),
        "funding_pct": None
        if figures.get("funding_rate") is None
        else 100 * figures["funding_rate"],
        "cascade": cascade["start"] if cascade else None,
        "cascade_side": cascade["side"] if cascade else None,
        "cascade_usd": cascade["notional_usd"] if cascade else None,
    }
    if values["long_distance"] is not None:
        values["long_distance"] = abs(values["long_distance"])
    own_z = {
        "change": figures.get("change_24h_z"),
        "whale_long": figures.get("whale_long_z"),
        "delta": latest_z.get("delta"),
        "oi_z": latest_z.get("oi_change_1h"),
        "funding": figures.get("funding_z"),
    }
    return ScreenerRow(key, market.symbol, market.exchange.name, values, own_z)


def screener_header(
    query: ScreenerQuery, path: str, window: str, fragment: str, extra: dict
) -> list[dict]:
    """Each column's sort link: ascending first, descending when it is the ascending sort; `url`
    the page's (a real href), `fragment` the table's (what htmx swaps in, pushing `url`)."""
    links = []
    for key, label in COLUMNS.items():
        current = query.sort == key
        flip = "-" if current and not query.descending else ""
        params = {"window": window, **query.params(sort=f"{flip}{key}")}
        swap = {**params, **extra, "push": "1"}
        sort = "descending" if current and query.descending else "ascending" if current else ""
        links.append(
            {
                "key": key,
                "label": label,
                "url": f"{path}?{urlencode(params)}",
                "fragment": f"{fragment}?{urlencode(swap)}",
                "sort": sort,
            }
        )
    return links


def positioning_for_listing(market_ids: list[int]) -> dict[int, PositioningSnapshot]:
    """The stored positioning of the markets, without the series (what the screener reads)."""
    rows = PositioningSnapshot.objects.filter(market_id__in=market_ids).defer("data", "anomalies")
    return {p.market_id: p for p in rows}
