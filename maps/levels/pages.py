"""What the pages show of the levels: each cluster's confluence (the cluster table and the
proximity widget: "61.6k-61.9k longs $435M · support 4 touches · bid wall $12M"), the levels card,
the layer switches, and the data the chart layers draw.

Every number comes from `maps.levels.services` (stored per snapshot) or the stored books; this
module picks, labels and places them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from django.urls import reverse

from maps import charts
from maps import pages as map_pages
from maps.analytics import orderbook as ob
from maps.analytics.levels import OVERBOUGHT, OVERSOLD, TIMEFRAMES, LevelsError
from maps.formatting import price, usd
from maps.levels import services
from maps.levels.charts import DEFAULT_ON, LAYERS, Depth, Layers, LevelsPlot
from maps.levels.selectors import book_history, common_edges, market_book_rows
from maps.models import LevelsSnapshot, MapSnapshot, Market, OrderBookSnapshot, ms_to_datetime
from maps.selectors import market_bars_arrays, market_snapshot_light, snapshot_freshness

log = logging.getLogger(__name__)

LAYER_LABELS = {
    "sr": "Support / resistance",
    "profile": "Volume profile",
    "depth": "Order-book depth",
    "walls": "Walls",
}
DASH = "\u2013"
NEAR_LEVELS = 4  # levels shown on the card on each side of the price
MAX_FLOW_BARS = 240
MAX_OI_POINTS = 1500


def levels_or_none(snapshot: MapSnapshot | None) -> LevelsSnapshot | None:
    """The snapshot's levels, or None (logged) when they cannot be computed: the page shows the
    map without them rather than failing."""
    if snapshot is None:
        return None
    try:
        return services.levels_for(snapshot=snapshot)
    except (LevelsError, ob.BookError) as exc:
        log.warning("levels of %s %s unavailable: %s", snapshot.market, snapshot.window, exc)
        return None


# Confluence in words.


def short_price(value: float) -> str:
    """A price in few characters: 61.6k, 3.31k, 145.2, 0.5213."""
    value = float(value)
    if abs(value) >= 100_000:
        return f"{value / 1000:.0f}k"
    if abs(value) >= 1000:
        digits = 1 if abs(value) >= 10_000 else 2
        return f"{value / 1000:.{digits}f}k"
    return price(value).replace(",", "")


@dataclass(frozen=True)
class Reason:
    kind: str
    weight: int
    text: str


@dataclass(frozen=True)
class Confluence:
    score: int
    reasons: tuple[Reason, ...]
    line: str  # the cluster and its reasons in one line

    @property
    def words(self) -> str:
        return " · ".join(r.text for r in self.reasons)


def reason_text(reason: dict) -> str:
    """A reason in words: 'support 4 touches', 'bid wall $12M', 'RSI 1h 76 overbought'."""
    if reason["kind"] in ("bid_wall", "ask_wall"):
        stood = reason.get("stood_ms") or 0
        text = f"{reason['text']} {usd(reason.get('usd'))}"
        if stood < ob.WALL_MIN_MS:
            return text
        return f"{text}, {_stood(stood, before=bool(reason.get('before')))}"
    return reason["text"]


def cluster_line(cluster: dict, reasons: list[Reason]) -> str:
    head = (
        f"{short_price(cluster['price_low'])}{DASH}{short_price(cluster['price_high'])} "
        f"{cluster['side']}s {usd(cluster['notional_usd'])}"
    )
    return " · ".join([head, *(r.text for r in reasons)])


def cluster_key(cluster: dict) -> tuple:
    return (cluster["side"], float(cluster["price_low"]), float(cluster["price_high"]))


def confluence_by_cluster(levels: LevelsSnapshot) -> dict[tuple, dict]:
    """The stored confluence of the snapshot's clusters, by cluster (side and range)."""
    return {cluster_key(conf): conf for conf in levels.confluence or [] if "side" in conf}


def confluence_view(cluster: dict, stored: dict | None) -> Confluence | None:
    if stored is None:
        return None
    reasons = tuple(
        Reason(r["kind"], int(r["weight"]), reason_text(r)) for r in stored.get("reasons", [])
    )
    return Confluence(int(stored.get("score", 0)), reasons, cluster_line(cluster, list(reasons)))


def with_confluence(clusters: list[dict], by_cluster: dict[tuple, dict]) -> list[dict]:
    """Copies of the clusters carrying `confluence` (a Confluence, or None)."""
    return [
        {**c, "confluence": confluence_view(c, by_cluster.get(cluster_key(c)))} for c in clusters
    ]


def proximity_with_confluence(proximity: dict, by_cluster: dict[tuple, dict]) -> dict:
    out = dict(proximity)
    for side in ("long", "short"):
        cluster = proximity.get(side)
        if cluster:
            stored = by_cluster.get(
                (side, float(cluster["price_low"]), float(cluster["price_high"]))
            )
            out[side] = {
                **cluster,
                "confluence": confluence_view({**cluster, "side": side}, stored),
            }
    return out


# The pair page.


def pair_levels(*, snapshot: MapSnapshot, clusters: list[dict], proximity: dict) -> dict:
    """What the pair page adds for the levels: its clusters and proximity with their confluence,
    the levels card, the layer switches."""
    levels = levels_or_none(snapshot)
    context = {"layers": layer_switches(), "levels": None}
    if levels is None:
        return context
    by_cluster = confluence_by_cluster(levels)
    context.update(
        clusters=with_confluence(clusters, by_cluster),
        proximity=proximity_with_confluence(proximity, by_cluster),
        levels=levels_card(snapshot, levels),
    )
    return context


def widget_levels(*, snapshot: MapSnapshot | None, proximity: dict | None) -> dict:
    """The proximity widget's clusters with their confluence (the widget polls on its own, so
    only the stored confluence is read)."""
    if snapshot is None or not proximity:
        return {}
    try:
        stored = services.levels_confluence(snapshot=snapshot)
    except (LevelsError, ob.BookError) as exc:
        log.warning("confluence of %s %s unavailable: %s", snapshot.market, snapshot.window, exc)
        return {}
    by_cluster = {cluster_key(c): c for c in stored if "side" in c}
    return {"proximity": proximity_with_confluence(proximity, by_cluster)}


def layer_switches() -> list[dict]:
    return [{"key": k, "label": LAYER_LABELS[k], "on": k in DEFAULT_ON} for k in LAYERS]


def levels_urls(market: Market, window: str) -> dict:
    args = [market.exchange.slug, market.slug]
    return {
        "page": f"{reverse('maps:levels', args=args)}?window={window}",
        "levels": f"{reverse('api:levels', args=args)}?window={window}",
        "orderbook": f"{reverse('api:orderbook', args=args)}?window={window}",
    }


@dataclass(frozen=True)
class LevelRow:
    price: float
    kind: str
    touches: int
    last_touch: int
    distance_pct: float


@dataclass(frozen=True)
class WallRow:
    side: str
    price: float
    usd: float
    multiple: float
    stood: str
    distance_pct: float


@dataclass(frozen=True)
class RsiRow:
    timeframe: str
    value: float | None
    state: str


def levels_card(snapshot: MapSnapshot, levels: LevelsSnapshot) -> dict:
    """The card: the nearest levels either side of the price, the profile's POC and value area,
    the RSIs, the recent divergences, the walls standing and the ATRs."""
    close = snapshot.last_close

    def distance(value: float) -> float:
        return 100.0 * (value - close) / close

    rows = [
        LevelRow(lv["price"], lv["kind"], lv["touches"], lv["last_touch"], distance(lv["price"]))
        for lv in levels.support_resistance
    ]
    above = [r for r in rows if r.price >= close][:NEAR_LEVELS]
    below = [r for r in rows if r.price < close][-NEAR_LEVELS:]
    profile = levels.volume_profile or {}
    walls = [
        WallRow(
            w["side"],
            w["price"],
            w["usd"],
            w["multiple"],
            _stood(w["stood_ms"], before=bool(w.get("before"))),
            distance(w["price"]),
        )
        for w in levels.walls
    ]
    return {
        "near": list(reversed(above)) + list(reversed(below)),
        "count": len(rows),
        "poc": profile.get("poc"),
        "value_area": profile.get("value_area"),
        "nodes": [n for n in profile.get("nodes", []) if n["kind"] == "hvn"][:4],
        "rsi": [rsi_row(tf, (levels.rsi or {}).get(tf, {}).get("last")) for tf in TIMEFRAMES],
        "divergences": levels.divergences[-3:][::-1],
        "walls": walls[:6],
        "atr_1h": levels.atr_1h,
        "atr_4h": levels.atr_4h,
        "urls": levels_urls(snapshot.market, snapshot.window),
        "computed_at": levels.computed_at,
    }


def rsi_row(timeframe: str, value: float | None) -> RsiRow:
    if value is None:
        return RsiRow(timeframe, None, "warming up")
    state = "overbought" if value >= OVERBOUGHT else "oversold" if value <= OVERSOLD else "neutral"
    return RsiRow(timeframe, value, state)


def _stood(ms: int, *, before: bool = False) -> str:
    """How long a wall has stood, briefly: 'new', '12 min', '3 h 20 min', '1 d 4 h'; 'over 24 h'
    when it already stood in the first book looked at (`before`)."""
    if before:  # it stood in the first book of the day looked at
        return f"over {services.WALL_LOOKBACK_MS // 3_600_000} h"
    minutes = int(ms // 60_000)
    if minutes < 1:
        return "new"
    hours, rest = divmod(minutes, 60)
    if hours >= 24:
        text = f"{hours // 24} d {hours % 24} h"
    elif hours:
        text = f"{hours} h {rest} min" if rest else f"{hours} h"
    else:
        text = f"{minutes} min"
    return text


# The chart layers.


def chart_layers(*, market: Market, snapshot: MapSnapshot, result) -> Layers | None:
    """The layers for the pair chart of this snapshot, or None without levels."""
    levels = levels_or_none(snapshot)
    if levels is None or not len(result.heat_times):
        return None
    start = int(result.heat_times[0])
    end = int(result.as_of) + result.step_ms
    depth = depth_columns(market=market, start=start, end=end)
    bars = market_bars_arrays(
        market_id=market.pk, start=ms_to_datetime(start), end=ms_to_datetime(end)
    )
    flow_times, flow_width, volume = flow_buckets(bars, result.step_ms)
    keep = charts.thin_indices(len(bars.ts), MAX_OI_POINTS)
    profile = levels.volume_profile or {}
    area = profile.get("value_area")
    plot = LevelsPlot(
        levels=levels.support_resistance,
        profile_edges=np.asarray(profile.get("edges", [0.0, 1.0]), dtype=np.float64),
        profile_volume=np.asarray(profile.get("volume", [0.0]), dtype=np.float64),
        poc_index=profile.get("poc_index"),
        value_area=(area["low"], area["high"]) if area else None,
        depth=depth,
        walls=chart_walls(depth),
        rsi=rsi_lines(levels),
        divergences=[
            {
                **d,
                "start_close": d["start"] + TIMEFRAMES[d["timeframe"]],
                "end_close": d["end"] + TIMEFRAMES[d["timeframe"]],
            }
            for d in levels.divergences
            if d["end"] >= start
        ],
        flow_times=flow_times,
        flow_width=flow_width,
        volume=volume,
        oi_times=bars.ts[keep] + result.step_ms,
        oi_usd=(bars.open_interest * bars.close)[keep],
        last_close=snapshot.last_close,
    )
    return Layers(plot)


def depth_columns(
    *, market: Market, start: int, end: int, limit: int = charts.MAX_COLUMNS
) -> Depth | None:
    """The books the depth heatmap shows: at most `limit` evenly spaced columns over [start,
    end), each the latest book at or before it (only those rows are read)."""
    times = list(
        OrderBookSnapshot.objects.filter(
            market=market, time__gte=ms_to_datetime(start), time__lt=ms_to_datetime(end)
        )
        .order_by("time")
        .values_list("time", flat=True)
    )
    if not times:
        return None
    stamps = np.array([int(t.timestamp() * 1000) for t in times], dtype=np.int64)
    pick, columns, spacing = ob.depth_columns(
        stamps, start=start, end=end - ob.MINUTE_MS, limit=limit
    )
    wanted = np.unique(pick[pick >= 0])
    if not len(wanted):
        return None
    rows = market_book_rows(
        market_id=market.pk,
        start=ms_to_datetime(int(stamps[wanted[0]])),
        end=ms_to_datetime(int(stamps[wanted[-1]]) + 1),
        only=[times[i] for i in wanted.tolist()],
    )
    position = np.full(len(stamps), -1)
    position[wanted] = np.arange(len(wanted))
    return Depth(
        times=columns + ob.MINUTE_MS,
        spacing=float(spacing),
        rows=rows,
        pick=np.where(pick >= 0, position[np.clip(pick, 0, None)], -1),
    )


def chart_walls(depth: Depth | None) -> list[dict]:
    """The walls seen in the depth heatmap's columns (those that stood two columns or more, and
    those standing at its end), labelled for the hover."""
    if depth is None or not len(depth.rows):
        return []
    rows = depth.rows
    history = book_history(rows, common_edges(rows))
    gap = int(1.5 * depth.spacing) + ob.MINUTE_MS
    walls = [
        w
        for w in ob.book_walls(history, gap_ms=gap)
        if w["standing"] or w["stood_ms"] >= max(ob.WALL_MIN_MS, depth.spacing)
    ]
    return [{**w, "stood_label": _stood(w["stood_ms"]), "span_ms": depth.spacing} for w in walls]


def rsi_lines(levels: LevelsSnapshot) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each timeframe's RSI at its periods' closes (the times stored are the periods' opens)."""
    out = {}
    for timeframe, period in TIMEFRAMES.items():
        series = (levels.rsi or {}).get(timeframe) or {}
        times = np.asarray(series.get("times", []), dtype=np.int64) + period
        out[timeframe] = (times, np.asarray(series.get("values", []), dtype=np.float64))
    return out


def flow_buckets(bars, step_ms: int) -> tuple[np.ndarray, float, np.ndarray]:
    """Traded volume in USD summed over at most MAX_FLOW_BARS buckets of whole steps, aligned on
    the last step: (each bucket's start, its width, its volume)."""
    if not len(bars.ts):
        return np.empty(0, dtype=np.int64), float(step_ms), np.empty(0)
    volume, k = charts.bucket_sums(bars.volume * bars.close, MAX_FLOW_BARS)
    last = int(bars.ts[-1])
    starts = last - step_ms * k * np.arange(len(volume) - 1, -1, -1) - step_ms * (k - 1)
    return starts, float(step_ms * k), volume


# The levels page.


def levels_page_context(request, *, market: Market, window: str) -> dict:
    """The levels page: the card, every level, the profile's nodes, the divergences, the walls
    of the last day and every cluster with its confluence."""
    path = reverse("maps:levels", args=[market.exchange.slug, market.slug])
    context = {
        "market": market,
        "exchange": market.exchange,
        "window": window,
        "window_links": map_pages.window_links(path, window, {}),
        "page_title": f"{market.symbol} {market.exchange.name} levels and walls ({window})",
        "canonical_url": request.build_absolute_uri(f"{path}?window={window}"),
        "snapshot": None,
        "levels": None,
    }
    snapshot = market_snapshot_light(market=market, window=window)
    levels = levels_or_none(snapshot)
    if levels is None:
        return context
    by_cluster = confluence_by_cluster(levels)
    close = snapshot.last_close
    context.update(
        snapshot=snapshot,
        freshness=snapshot_freshness(snapshot=snapshot, market=market),
        levels=levels_card(snapshot, levels),
        all_levels=[
            {**lv, "distance_pct": 100.0 * (lv["price"] - close) / close}
            for lv in reversed(levels.support_resistance)
        ],
        nodes=(levels.volume_profile or {}).get("nodes", []),
        divergences=list(reversed(levels.divergences)),
        wall_history=recent_walls(market=market, end=snapshot),
        clusters=with_confluence(snapshot.clusters, by_cluster),
    )
    return context


def recent_walls(*, market: Market, end: MapSnapshot) -> list[dict]:
    """The walls of the day before the snapshot's end that stood at least WALL_MIN_MS, latest
    first, labelled."""
    stop = int(end.as_of.timestamp() * 1000) + market.step_ms
    rows = market_book_rows(
        market_id=market.pk,
        start=ms_to_datetime(stop - services.WALL_LOOKBACK_MS),
        end=ms_to_datetime(stop),
    )
    if not len(rows):
        return []
    history = book_history(rows, common_edges(rows))
    first = int(rows.times[0])
    walls = [
        {**w, "stood_label": _stood(w["stood_ms"], before=w["appeared"] == first)}
        for w in ob.book_walls(history)
        if w["stood_ms"] >= ob.WALL_MIN_MS
    ]
    return sorted(walls, key=lambda w: -w["last_seen"])[:40]


# The API's clusters and proximity.


def confluence_json(stored: dict | None) -> dict | None:
    """A cluster's confluence as the API serves it: the score, and each reason with its kind,
    weight, words and what it rests on."""
    if stored is None:
        return None
    reasons = []
    for reason in stored.get("reasons", []):
        item = {
            "kind": reason["kind"],
            "weight": int(reason["weight"]),
            "text": reason_text(reason),
            "price": None if reason.get("price") is None else float(f"{reason['price']:.10g}"),
        }
        for key in ("touches", "stood_ms"):
            if key in reason:
                item[key] = int(reason[key])
        if "usd" in reason:
            item["usd"] = round(float(reason["usd"]), 2)
        if "rsi" in reason:
            item["rsi"] = {tf: round(float(v), 2) for tf, v in reason["rsi"].items()}
        reasons.append(item)
    return {"score": int(stored.get("score", 0)), "reasons": reasons}


def snapshot_confluence(snapshot: MapSnapshot) -> tuple[list[dict], dict]:
    """The snapshot's clusters and proximity, each cluster with `confluence` (null when the
    levels are not available)."""
    levels = levels_or_none(snapshot)
    by_cluster = confluence_by_cluster(levels) if levels is not None else {}
    clusters = [
        {**c, "confluence": confluence_json(by_cluster.get(cluster_key(c)))}
        for c in snapshot.clusters
    ]
    proximity = dict(snapshot.proximity)
    for side in ("long", "short"):
        if cluster := proximity.get(side):
            key = (side, float(cluster["price_low"]), float(cluster["price_high"]))
            proximity[side] = {**cluster, "confluence": confluence_json(by_cluster.get(key))}
    return clusters, proximity
