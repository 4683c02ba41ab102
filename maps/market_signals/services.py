"""Writes: run the signals and the backtest on a market's stored data and keep the results.

Both read the map of the default window (`MAP_WINDOW`) as it stood at each moment, from one run
of the model over the market's bars (`maps.analytics.signals.Book`), and the market's real
liquidations when it has some in the span, else the model's estimates.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from maps.analytics import signals
from maps.engine import ENGINE_VERSION
from maps.engine.types import Bars
from maps.market_signals.selectors import (
    market_backtest_stored,
    market_liquidations_per_step,
    market_signals_stored,
)
from maps.models import (
    WINDOWS,
    Market,
    MarketBacktest,
    MarketSignals,
    datetime_to_ms,
    ms_to_datetime,
)
from maps.selectors import market_bars_arrays

SIGNALS_VERSION = "1"
VERSION = f"{ENGINE_VERSION}+signals.{SIGNALS_VERSION}"
BACKTEST_DAYS = 30
INCREMENT_MS = 2 * 86_400_000  # stored signals younger than this are extended, not redone


def map_window() -> str:
    """The window whose map the signals and the backtest read: the site's default."""
    return settings.LIQSITE_DEFAULT_WINDOW


def signals_window() -> str:
    """How far back the stored signals list cascades and sweeps: the longest window."""
    return max(settings.LIQSITE_WINDOWS, key=lambda w: WINDOWS[w])


def market_last_bar_ms(*, market: Market) -> int | None:
    last = market.bars.order_by("-time").values_list("time", flat=True).first()
    return None if last is None else datetime_to_ms(last)


def market_study(*, market: Market, as_of_ms: int, start_ms: int) -> signals.Study | None:
    """The study of the market's bars up to the step opening at `as_of_ms`, reaching back far
    enough for the moments from `start_ms` on (a week of baseline and a whole map window before
    them); None with fewer than two bars."""
    params = market.engine_params(map_window(), max_columns=1)
    load_from = start_ms - signals.BASELINE_MS - params.window_ms
    bars = market_bars_arrays(
        market_id=market.pk,
        start=ms_to_datetime(load_from),
        end=ms_to_datetime(as_of_ms + market.step_ms),
    )
    bars = _with_ratios(bars, params.long_share)
    if len(bars) < 2:
        return None
    real = market_liquidations_per_step(market_id=market.pk, ts=bars.ts, step_ms=market.step_ms)
    series, covered = (None, 0) if real is None else ((real[0], real[1]), real[2])
    return signals.study_build(bars, params, series, covered, from_ms=start_ms - signals.DAY_MS)


def _with_ratios(bars: Bars, long_share: str) -> Bars:
    """In ratio mode, only the bars after the last one without a long/short ratio (the model
    needs a ratio on every step it reads)."""
    ratio = bars.long_short_ratio
    if long_share != "ratio" or ratio is None or not np.isnan(ratio).any():
        return bars
    first = int(np.flatnonzero(np.isnan(ratio))[-1]) + 1
    return signals.bars_slice(bars, first, len(bars))


def signals_compute(*, market: Market, as_of_ms: int, window: str) -> dict | None:
    """Cascades, sweeps and the reversal checklist of the `window` ending with the step that
    opens at `as_of_ms` (a plain dict, not stored); None without enough bars."""
    start = as_of_ms + market.step_ms - WINDOWS[window]
    study = market_study(market=market, as_of_ms=as_of_ms, start_ms=start)
    if study is None:
        return None
    return signals.study_signals(study, start)


def market_signals_refresh(*, market: Market, full: bool = False) -> MarketSignals | None:
    """Compute and store the market's signals up to its last bar over the longest window.

    When this version stored them less than INCREMENT_MS before the last bar, only the last day
    before that and the new steps are computed again (every rule looks back, never forward, by
    more than a day: cascades older than that, their reversal watch and sweeps' outcomes are
    final) and the older items are kept; `full` computes everything.
    """
    as_of = market_last_bar_ms(market=market)
    if as_of is None:
        return None
    window_start = as_of + market.step_ms - WINDOWS[signals_window()]
    stored = market_signals_stored(market_id=market.pk)
    start, kept = window_start, ([], [])
    if not full and stored is not None and stored.version == VERSION:
        since = datetime_to_ms(stored.as_of)
        if as_of - INCREMENT_MS <= since <= as_of:
            start = max(window_start, since - signals.DAY_MS)
            kept = (
                [c for c in stored.cascades if window_start <= c["end"] < start],
                [s for s in stored.sweeps if window_start <= s["time"] < start],
            )
    study = market_study(market=market, as_of_ms=as_of, start_ms=start)
    if study is None:
        return None
    found = signals.study_signals(study, start)
    if stored is not None and start > window_start and found["source"] != stored.source:
        return market_signals_refresh(market=market, full=True)
    with transaction.atomic():
        saved, _ = MarketSignals.objects.update_or_create(
            market=market,
            defaults={
                "as_of": ms_to_datetime(found["as_of"]),
                "start": ms_to_datetime(window_start),
                "computed_at": timezone.now(),
                "version": VERSION,
                "source": found["source"],
                "cascades": sorted(kept[0] + found["cascades"], key=lambda c: c["start"]),
                "sweeps": sorted(kept[1] + found["sweeps"], key=lambda s: s["time"]),
                "reversal": found["reversal"],
                "thresholds": found["thresholds"],
            },
        )
    return saved


def market_signals_current(
    *, market: Market, as_of: datetime | None = None
) -> MarketSignals | None:
    """The stored signals when this version computed them up to `as_of` or later (the market's
    last bar when None); else they are computed now, up to the last bar, and stored."""
    stored = market_signals_stored(market_id=market.pk)
    if as_of is None:
        last = market_last_bar_ms(market=market)
        if last is None:
            return None
        as_of = ms_to_datetime(last)
    if stored is not None and stored.version == VERSION and stored.as_of >= as_of:
        return stored
    return market_signals_refresh(market=market)


def backtest_compute(*, market: Market, as_of_ms: int, days: int = BACKTEST_DAYS) -> dict | None:
    """The backtest over the hourly moments of the `days` ending with the step opening at
    `as_of_ms`, not stored; None without enough bars."""
    start = as_of_ms + market.step_ms - days * signals.DAY_MS
    study = market_study(market=market, as_of_ms=as_of_ms, start_ms=start)
    if study is None:
        return None
    first = int(study.ts[0])
    return signals.study_backtest(study, max(start, first + signals.DAY_MS))


def market_backtest_refresh(*, market: Market) -> MarketBacktest | None:
    """Compute and store the market's backtest over the BACKTEST_DAYS up to its last bar."""
    as_of = market_last_bar_ms(market=market)
    if as_of is None:
        return None
    found = backtest_compute(market=market, as_of_ms=as_of)
    if found is None:
        return None
    stored, _ = MarketBacktest.objects.update_or_create(
        market=market,
        defaults={
            "computed_at": timezone.now(),
            "period_start": ms_to_datetime(found["period_start"]),
            "period_end": ms_to_datetime(found["period_end"]),
            "version": VERSION,
            "source": found["source"],
            "results": found,
        },
    )
    return stored


def market_backtest_current(*, market: Market) -> MarketBacktest | None:
    """The stored backtest (whatever its age: the daily task renews it), else computed now."""
    stored = market_backtest_stored(market_id=market.pk)
    if stored is not None and stored.version == VERSION:
        return stored
    return market_backtest_refresh(market=market)


def signals_summary(market: Market) -> str:
    """Compute and store the market's signals and backtest (after an import or a seed); one line
    saying what they found."""
    signals = market_signals_refresh(market=market)
    backtest = market_backtest_refresh(market=market)
    if signals is None or backtest is None:
        return "signals and backtest: not enough bars yet"
    magnet = backtest.results["magnet"]
    return (
        f"signals: {len(signals.cascades)} cascades and {len(signals.sweeps)} sweeps "
        f"(liquidations: {signals.source}); backtest: {magnet['cases']} hourly cases for the "
        "larger-cluster question"
    )
