"""What the signals, backtest and replay parts of the pages show.

Every figure comes from the stored signals and backtest (`services`), or, on a replay, from the
signals computed for that moment (cached); nothing here computes beyond picking, filtering and
putting them into words.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from urllib.parse import urlencode

import numpy as np
from django.urls import reverse

from maps import charts
from maps.analytics.signals import (
    MERGE_GAP_MS,
    MIN_EVENT_CASES,
    MIN_MAP_CASES,
    MIN_MAP_DAYS,
    RECENT_STEPS,
    RSI_OVERBOUGHT,
    RSI_OVERSOLD,
)
from maps.engine.types import EngineError
from maps.formatting import MISSING, duration, price, usd
from maps.market_signals import services
from maps.market_signals.charts import cascade_marks, replay_marks, sweep_marks
from maps.market_signals.replay import at_text, is_replay, replay_range
from maps.market_signals.selectors import market_backtest_stored, market_signals_stored
from maps.models import WINDOWS, MapSnapshot, Market, MarketSignals, datetime_to_ms, ms_to_datetime
from maps.selectors import market_bars_arrays

log = logging.getLogger(__name__)

RECENT_ITEMS = 5
SOURCE_WORDS = {
    "real": "real liquidations reported by the exchange",
    "estimated": "the model's estimated liquidations (no real ones stored for this market)",
}


# The signals of one map: stored for the live map, computed for a replayed moment.


def snapshot_signals(
    *, market: Market, snapshot: MapSnapshot, window: str | None = None
) -> dict | None:
    """Cascades (those ending inside the window, the snapshot's unless given) and sweeps (inside
    it), the reversal checklist and the thresholds, as of the snapshot."""
    window = window or snapshot.window
    as_of = datetime_to_ms(snapshot.as_of)
    start = as_of + market.step_ms - WINDOWS[window]
    try:
        if is_replay(snapshot):
            found = charts.cached(
                f"signals:{snapshot.replay_version}",
                lambda: (
                    services.signals_compute(market=market, as_of_ms=as_of, window=window) or {}
                ),
            )
        else:
            stored = services.market_signals_current(market=market, as_of=snapshot.as_of)
            found = stored_signals(stored) if stored is not None else {}
    except EngineError:
        log.exception("signals of market %s failed", market.pk)
        return None
    if not found:
        return None
    return {
        **found,
        "cascades": [c for c in found["cascades"] if c["end"] >= start],
        "sweeps": [s for s in found["sweeps"] if s["time"] >= start],
        "window_start": start,
    }


def stored_signals(stored: MarketSignals) -> dict:
    return {
        "as_of": datetime_to_ms(stored.as_of),
        "start": datetime_to_ms(stored.start),
        "source": stored.source,
        "cascades": stored.cascades,
        "sweeps": stored.sweeps,
        "reversal": stored.reversal,
        "thresholds": stored.thresholds,
    }


# The signals panel.


@dataclass
class SignalsPanel:
    source: str
    source_words: str
    as_of: int
    step_ms: int
    cascade: dict | None
    running: bool
    sweep: dict | None
    checklist: dict | None
    cascades: list[dict]
    sweeps: list[dict]
    counts: dict
    thresholds: dict
    api_urls: dict = field(default_factory=dict)


def signals_panel(*, market: Market, snapshot: MapSnapshot, query: dict) -> SignalsPanel | None:
    found = snapshot_signals(market=market, snapshot=snapshot)
    if found is None:
        return None
    cascades, sweeps = found["cascades"], found["sweeps"]
    latest = max(cascades, key=lambda c: c["start"]) if cascades else None
    as_of = found["as_of"]
    running = latest is not None and as_of - latest["end"] <= MERGE_GAP_MS
    checklist = found["reversal"]
    if checklist is None and latest is not None:
        checklist = latest["reversal"]
    return SignalsPanel(
        source=found["source"],
        source_words=SOURCE_WORDS[found["source"]],
        as_of=as_of,
        step_ms=market.step_ms,
        cascade=_cascade_view(latest) if latest else None,
        running=running,
        sweep=_sweep_view(sweeps[-1]) if sweeps else None,
        checklist=checklist_view(checklist, market.step_ms) if checklist else None,
        cascades=[_cascade_view(c) for c in cascades[::-1][:RECENT_ITEMS]],
        sweeps=[_sweep_view(s) for s in sweeps[::-1][:RECENT_ITEMS]],
        counts={
            "cascades": len(cascades),
            "long": sum(c["side"] == "long" for c in cascades),
            "short": sum(c["side"] == "short" for c in cascades),
            "sweeps": len(sweeps),
            "fake": sum(bool(s["fake"]) for s in sweeps),
        },
        thresholds=found.get("thresholds") or {},
        api_urls=signal_api_urls(market, query),
    )


def _cascade_view(cascade: dict) -> dict:
    who = "Longs" if cascade["side"] == "long" else "Shorts"
    cluster = cascade.get("cluster")
    crossed = ""
    if cluster:
        verb = "ran through" if cluster["through"] else "ran into"
        crossed = (
            f"{verb} the {usd(cluster['notional_usd'])} {cascade['side']} cluster at "
            f"{price(cluster['price_low'])} to {price(cluster['price_high'])}"
        )
    return {**cascade, "who": who, "crossed": crossed}


def _sweep_view(sweep: dict) -> dict:
    where = "long cluster below" if sweep["side"] == "long" else "short cluster above"
    outcome = {True: "fake breakout", False: "held beyond", None: "too early to say"}[sweep["fake"]]
    return {**sweep, "where": where, "outcome": outcome}


# Each reason in words, after longs were liquidated (a fall) and after shorts (a rise).
REASONS = {
    "exhausted": ("Liquidations well below their peak", "Liquidations well below their peak"),
    "stalled": (
        "The fall stalled (no new low for {recent})",
        "The rise stalled (no new high for {recent})",
    ),
    "rsi": (
        f"RSI(14) oversold (at or under {RSI_OVERSOLD:g}) since the cascade began",
        f"RSI(14) overbought (at or over {RSI_OVERBOUGHT:g}) since the cascade began",
    ),
    "divergence": (
        "Bullish divergence: the low retested with RSI 5+ points higher",
        "Bearish divergence: the high retested with RSI 5+ points lower",
    ),
    "candle": ("A hammer candle at the low", "A shooting-star candle at the high"),
    "open_interest": (
        "Open interest no longer falling (over {recent})",
        "Open interest no longer falling (over {recent})",
    ),
}


def checklist_view(checklist: dict, step_ms: int) -> dict:
    """The checklist in words: each reason with whether it holds and the figure behind it."""
    k = 0 if checklist["side"] == "long" else 1
    recent = duration(RECENT_STEPS * step_ms)
    lines = [
        {
            **reason,
            "label": REASONS[reason["key"]][k].format(recent=recent),
            "detail": _detail(reason, recent),
        }
        for reason in checklist["reasons"]
    ]
    return {
        **checklist,
        "lines": lines,
        "way": "a rebound up" if checklist["side"] == "long" else "a turn down",
        "after": "longs" if checklist["side"] == "long" else "shorts",
    }


def _detail(reason: dict, recent: str) -> str:
    key = reason["key"]
    if key == "exhausted":
        return f"last {recent}: {usd(reason['recent_usd'])} a step, peak {usd(reason['peak_usd'])}"
    if key == "stalled":
        return f"{reason['steps_since_extreme']} steps since the extreme"
    if key == "rsi":
        reached, now = reason.get("reached"), reason.get("rsi")
        if reached is None or now is None:
            return "not enough data"
        return f"reached {reached:.1f}, now {now:.1f}"
    if key == "divergence":
        at, now = reason.get("rsi_at_extreme"), reason.get("rsi")
        if at is None or now is None:
            return "not enough data"
        return f"RSI {at:.1f} at the extreme, {now:.1f} now"
    if key == "candle":
        return f"extreme candle at {ms_to_datetime(reason['time']):%H:%M} UTC"
    change = reason.get("change_pct")
    return MISSING if change is None else f"{change:+.2f}%"


def signal_api_urls(market: Market, query: dict) -> dict:
    """The panel's documents, with the page's window and moment (the backtest takes neither)."""
    args = [market.exchange.slug, market.slug]
    urls = {
        kind: f"{reverse(f'api:{kind}', args=args)}?{urlencode(query)}"
        for kind in ("cascades", "sweeps", "signals")
    }
    urls["backtest"] = reverse("api:backtest", args=args)
    return urls


# The backtest panel, in plain words.


def backtest_panel(*, market: Market) -> dict | None:
    stored = market_backtest_stored(market_id=market.pk)
    if stored is None or stored.version != services.VERSION:
        return None
    return backtest_words(stored.results, computed_at=stored.computed_at, source=stored.source)


def backtest_words(results: dict, *, computed_at, source: str) -> dict:
    lines = [
        _rate_line(
            results["magnet"],
            "Larger cluster first",
            "On this market, price reached the larger cluster first in {hit} of {cases} cases; "
            "a random level at the same distance: {chance}",
            "hourly maps with a decided race between a larger and a nearer cluster",
        ),
        _rate_line(
            results["reach_above"],
            "Nearest short cluster above within 24 h",
            "Price reached the nearest short cluster above within 24 h in {hit} of {cases} "
            "cases; price's own rate for a rise that far: {chance}",
            "hourly maps with a short cluster above",
        ),
        _rate_line(
            results["reach_below"],
            "Nearest long cluster below within 24 h",
            "Price reached the nearest long cluster below within 24 h in {hit} of {cases} cases; "
            "price's own rate for a fall that far: {chance}",
            "hourly maps with a long cluster below",
        ),
        _cascade_line(results["after_cascades"]),
        _rate_line(
            results["after_fake_breakouts"],
            "After fake breakouts",
            "After {cases} fake breakouts, price went on to the opposite cluster within 24 h in "
            "{hit} of cases; price's own rate for a move that far: {chance}",
            "fake breakouts with an opposite cluster and 24 h of data after them",
            by_day=False,
        ),
    ]
    return {
        "lines": lines,
        "period_start": ms_to_datetime(results["period_start"]),
        "period_end": ms_to_datetime(results["period_end"]),
        "moments": results["moments"],
        "source": source,
        "computed_at": computed_at,
        "horizons": _cascade_rows(results["after_cascades"]),
    }


def _points(value: float) -> str:
    """A difference of two rates in points: +7, -3, 0."""
    points = round(value * 100)
    return f"{points:+d}" if points else "0"


def _share(value: float) -> str:
    return f"{value * 100:.0f}%"


def _verdict(low: float | None, high: float | None) -> tuple[str, str]:
    if low is None or high is None:
        return "few", "too few cases"
    if low > 0:
        return "better", "better than chance"
    if high < 0:
        return "worse", "worse than chance"
    return "even", "no clear edge"


def _rate_line(stat: dict, title: str, sentence: str, counted: str, by_day: bool = True) -> dict:
    if not stat["enough"]:
        days = f" over {stat['groups']} days" if by_day else ""
        need = f"{MIN_MAP_CASES} over {MIN_MAP_DAYS} days" if by_day else f"{MIN_EVENT_CASES}"
        text = f"{stat['cases']} {counted}{days}: too few to say (at least {need} are needed)."
        return {"title": title, "text": text, "verdict": "few", "verdict_words": "too few cases"}
    body = sentence.format(
        hit=_share(stat["hit_rate"]), chance=_share(stat["chance_rate"]), cases=stat["cases"]
    )
    text = (
        f"{body}; edge {_points(stat['edge'])} points, 90% interval "
        f"{_points(stat['edge_low'])} to {_points(stat['edge_high'])}."
    )
    verdict, words = _verdict(stat["edge_low"], stat["edge_high"])
    return {"title": title, "text": text, "verdict": verdict, "verdict_words": words}


def _cascade_line(stat: dict) -> dict:
    title = "After cascades"
    four = stat["horizons"].get("4h") or {}
    if not stat["enough"] or four.get("edge") is None:
        text = (
            f"{stat['cases']} cascades with 24 h of data after them: too few to say (at least "
            f"{MIN_EVENT_CASES} are needed)."
        )
        return {"title": title, "text": text, "verdict": "few", "verdict_words": "too few cases"}
    text = (
        f"After {stat['cases']} cascades, price rebounded within 4 h in "
        f"{_share(four['rebound_share'])} of cases (chance: {_share(four['chance_share'])}); the "
        f"mean move the rebound's way was {four['mean_return_pct']:+.2f}% against "
        f"{four['unconditional_pct']:+.2f}% unconditionally: edge {four['edge']:+.2f} points, 90% "
        f"interval {four['edge_low']:+.2f} to {four['edge_high']:+.2f}."
    )
    verdict, words = _verdict(four["edge_low"], four["edge_high"])
    return {"title": title, "text": text, "verdict": verdict, "verdict_words": words}


def _cascade_rows(stat: dict) -> list[dict]:
    if not stat["enough"]:
        return []
    return [
        {
            "horizon": name,
            **values,
            "edge_text": f"{values['edge']:+.2f} ({values['edge_low']:+.2f} to "
            f"{values['edge_high']:+.2f})",
        }
        for name, values in stat["horizons"].items()
        if values.get("edge") is not None
    ]


# The replay controls and the chart layers.


def replay_controls(
    *, market: Market, snapshot: MapSnapshot, path: str, query: dict
) -> dict | None:
    """The time slider's range and value, the links one hour and one day either way, and the way
    back to the live map."""
    span = replay_range(market=market, span=getattr(snapshot, "replay_span", None))
    if span is None:
        return None
    replay = is_replay(snapshot)
    at = snapshot.replay_at if replay else span["max"]
    at = min(max(at, span["min"]), span["max"])

    def link(ms: int) -> str | None:
        if not span["min"] <= ms <= span["max"]:
            return None
        return f"{path}?{urlencode({**query, 'at': at_text(ms)})}"

    hour, day = 3_600_000, 86_400_000
    return {
        **span,
        "value": at,
        "replay": replay,
        "at_text": at_text(at),
        "as_of": snapshot.as_of,
        "live_url": f"{path}?{urlencode(query)}",
        "steps": [
            ("\u22121 d", link(at - day)),
            ("\u22121 h", link(at - hour)),
            ("+1 h", link(at + hour)),
            ("+1 d", link(at + day)),
        ],
        "query": query,
    }


def chart_layers(*, market: Market, snapshot: MapSnapshot, heat_start: int) -> dict:
    """The inputs of the heatmap's signal layers (maps.figures.signals): the cascades and sweeps
    inside the heatmap's time span and, on a replay, the price path after the moment."""
    layers: dict = {}
    found = snapshot_signals(market=market, snapshot=snapshot)
    step = market.step_ms
    if found:
        cascades = [c for c in found["cascades"] if c["end"] + step >= heat_start]
        sweeps = [s for s in found["sweeps"] if s["time"] >= heat_start]
        bars = market_bars_arrays(
            market_id=market.pk,
            start=ms_to_datetime(heat_start),
            end=ms_to_datetime(datetime_to_ms(snapshot.as_of) + step),
        )
        layers["cascades"] = cascade_marks(cascades, bars.ts + step, bars.close, step)
        layers["sweeps"] = sweep_marks(sweeps, step)
    if is_replay(snapshot):
        times, closes = after_path(market=market, snapshot=snapshot)
        layers["replay"] = replay_marks(snapshot.replay_at, times, closes)
    return layers


def after_path(*, market: Market, snapshot: MapSnapshot) -> tuple[np.ndarray, np.ndarray]:
    """The closes (at each step's end) from the replayed moment over a quarter of the window."""
    step = market.step_ms
    as_of = datetime_to_ms(snapshot.as_of)
    span = WINDOWS[snapshot.window] // 4
    bars = market_bars_arrays(
        market_id=market.pk,
        start=ms_to_datetime(as_of),
        end=ms_to_datetime(as_of + step + span),
    )
    return bars.ts + step, bars.close


def coin_signal_rows(*, markets: list[Market]) -> list[dict]:
    """Per market of a coin: its latest cascade, last sweep and reversal check, from the stored
    signals (a market without them yet says so)."""
    rows = []
    for market in markets:
        stored = market_signals_stored(market_id=market.pk)
        if stored is None or stored.version != services.VERSION:
            rows.append({"market": market, "signals": None})
            continue
        found = stored_signals(stored)
        cascade = max(found["cascades"], key=lambda c: c["start"]) if found["cascades"] else None
        checklist = found["reversal"] or (cascade["reversal"] if cascade else None)
        rows.append(
            {
                "market": market,
                "signals": found,
                "cascade": _cascade_view(cascade) if cascade else None,
                "sweep": _sweep_view(found["sweeps"][-1]) if found["sweeps"] else None,
                "checklist": checklist,
                "backtest": market_backtest_stored(market_id=market.pk),
            }
        )
    return rows


def pair_context(*, market: Market, snapshot: MapSnapshot, path: str, query: dict) -> dict:
    """The pair page's signals panel (on a replay, a placeholder that loads it: the signals of a
    past moment are computed on demand), backtest panel and replay controls."""
    replay = is_replay(snapshot)
    moment = {"at": at_text(snapshot.replay_at)} if replay else {}
    args = [market.exchange.slug, market.slug]
    signals_query = urlencode({"window": snapshot.window, **moment})
    return {
        "signals": None
        if replay
        else signals_panel(market=market, snapshot=snapshot, query={"window": snapshot.window}),
        "signals_url": f"{reverse('maps:pair_signals', args=args)}?{signals_query}"
        if replay
        else "",
        "backtest": backtest_panel(market=market),
        "backtest_url": reverse("maps:pair_backtest", args=args),
        "backtest_api_url": reverse("api:backtest", args=args),
        "replay": replay_controls(market=market, snapshot=snapshot, path=path, query=query),
    }


def signals_fragment_context(*, market: Market, snapshot: MapSnapshot) -> dict:
    """The signals panel alone, for the snapshot's window and moment."""
    moment = {"at": at_text(snapshot.replay_at)} if is_replay(snapshot) else {}
    query = {"window": snapshot.window, **moment}
    return {
        "market": market,
        "window": snapshot.window,
        "signals": signals_panel(market=market, snapshot=snapshot, query=query),
        "signals_url": "",
    }
