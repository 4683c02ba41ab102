"""Ingestion: an exchange's series turned into bars (one per market and step) and upserted.

A bar for the step [t, t + step) needs every 1-minute kline opening inside it and the open interest
snapshot taken at t + step (the step's end); which row holds that snapshot follows the connector's
stamping (`Connector.oi_stamping`, MODEL.md v2.1, maps.engine.alignment), and the rows are kept as
they came (maps.metrics_rows) and checked against the candles' closes where the exchange gives a
USD value. In `ratio` mode a bar also needs the long/short ratio taken then, and in `taker` mode,
on an exchange that publishes taker volume apart from its klines, every taker period inside the
step. A step missing any of these is skipped and reported, never guessed. Where an exchange
publishes no taker volume at all, bars carry a neutral half of the volume and the market is
switched to the connector's long-share mode.

A run covers, for a market with no bars, everything the exchange keeps (backfill); otherwise the
steps after its last bar (incremental) and a few of the gaps between its bars (refill). Writes are
upserts on (market, time), one transaction per UTC day, so a run cut short and started again only
repeats work.
"""

from __future__ import annotations

import bisect
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import F, Max, Window
from django.db.models.functions import Lead
from django.utils import timezone

from maps.connectors import (
    RETRYABLE_ERRORS,
    Candle,
    Connector,
    ConnectorError,
    Point,
    TakerBucket,
    connector_for,
)
from maps.connectors.base import DAY_MS, MINUTE_MS
from maps.engine.alignment import (
    CHECK_MIN_ROWS,
    SNAPSHOT_PERIOD_MS,
    check_stamping,
    snapshot_times,
)
from maps.engine.types import iso_utc
from maps.metrics_rows import market_metrics_check_store, metrics_rows_upsert
from maps.models import BAR_VALUE_FIELDS, Bar, Market, datetime_to_ms, ms_to_datetime

log = logging.getLogger(__name__)

GAPS_PER_RUN = 3
GAP_RETRY_SECONDS = 6 * 3600
FUNDING_LOOKBACK_MS = DAY_MS
BAR_FIELDS = [*BAR_VALUE_FIELDS, "funding_rate"]


@dataclass
class Series:
    """Everything fetched for a span of steps, each list ascending by time."""

    candles: list[Candle]
    open_interest: list[Point]
    ratios: list[Point] = field(default_factory=list)
    taker: list[TakerBucket] = field(default_factory=list)
    funding: list[Point] = field(default_factory=list)
    positioning: dict[str, list[Point]] = field(default_factory=dict)
    taker_expected: bool = False
    """The exchange publishes taker volume apart from its klines (then `taker` mode needs it)."""


@dataclass
class IngestReport:
    market_id: int
    ranges: list[tuple[int, int]] = field(default_factory=list)
    written: int = 0
    skipped: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    last_bar_ms: int | None = None
    refilled_gap: bool = False

    def summary(self) -> str:
        return (
            f"market {self.market_id}: {self.written} bars written over {len(self.ranges)} "
            f"range(s), {len(self.skipped)} step(s) skipped"
        )


def steps_to_bars(
    *, start: int, end: int, step_ms: int, series: Series, long_share: str, stamping: str = "end"
) -> tuple[list[dict], list[str]]:
    """Bars for the steps opening in [start, end) and the reasons steps were skipped; the open
    interest and ratio rows are read under `stamping`."""
    per_step = step_ms // MINUTE_MS
    candles: dict[int, list[Candle]] = {}
    for candle in series.candles:
        if start <= candle.ts < end:
            candles.setdefault(candle.ts - candle.ts % step_ms, []).append(candle)
    taker: dict[int, tuple[int, float]] = {}
    for bucket in series.taker:
        t = bucket.ts - bucket.ts % step_ms
        covered, buy = taker.get(t, (0, 0.0))
        taker[t] = (covered + bucket.span_ms, buy + bucket.buy)
    oi = by_snapshot(series.open_interest, stamping)
    ratios = by_snapshot(series.ratios, stamping)
    funding_times = [p.ts for p in series.funding]
    bars, skipped = [], []
    first = start + (-start) % step_ms
    for t in range(first, end, step_ms):
        step = Step(t, step_ms, sorted(candles.get(t, []), key=lambda c: c.ts), taker.get(t))
        reason = step.missing(
            per_step, oi, ratios, long_share, taker_expected=series.taker_expected
        )
        if reason:
            skipped.append(f"{iso_utc(t)}: {reason}")
            continue
        bar = step.bar(oi[step.end], ratios.get(step.end))
        index = bisect.bisect_right(funding_times, step.end) - 1
        bar["funding_rate"] = series.funding[index].value if index >= 0 else None
        bars.append(bar)
    return bars, skipped


def by_snapshot(points: list[Point], stamping: str) -> dict[int, float]:
    """The points' values keyed by their snapshot time under `stamping`."""
    stamps = np.array([p.ts for p in points], dtype=np.int64)
    snapshots = snapshot_times(stamps, stamping).tolist()
    return {s: p.value for s, p in zip(snapshots, points, strict=True)}


@dataclass(frozen=True)
class Step:
    """One step's klines (ascending) and its taker periods (covered ms, buy volume), if any."""

    ts: int
    step_ms: int
    candles: list[Candle]
    taker: tuple[int, float] | None

    @property
    def end(self) -> int:
        return self.ts + self.step_ms

    def missing(
        self,
        per_step: int,
        oi: dict[int, float],
        ratios: dict[int, float],
        long_share: str,
        *,
        taker_expected: bool,
    ) -> str | None:
        """Why this step cannot be a bar, or None."""
        if len(self.candles) != per_step:
            return f"{len(self.candles)} of {per_step} klines"
        if self.end not in oi:
            return f"no open interest at {iso_utc(self.end)}"
        if long_share == "ratio" and self.end not in ratios:
            return f"no long/short ratio at {iso_utc(self.end)}"
        in_klines = self.candles[0].taker_buy is not None
        needs_periods = long_share == "taker" and taker_expected and not in_klines
        if needs_periods and (self.taker is None or self.taker[0] < self.step_ms):
            return "taker volume incomplete"
        return None

    def bar(self, open_interest: float, ratio: float | None) -> dict:
        volume = sum(c.volume for c in self.candles)
        if all(c.taker_buy is not None for c in self.candles):
            buy = sum(c.taker_buy for c in self.candles)
        elif self.taker is not None:
            buy = self.taker[1]
        else:
            buy = volume / 2
        return {
            "ts": self.ts,
            "open": self.candles[0].open,
            "high": max(c.high for c in self.candles),
            "low": min(c.low for c in self.candles),
            "close": self.candles[-1].close,
            "volume": volume,
            "taker_buy_volume": min(buy, volume),
            "open_interest": open_interest,
            "long_short_ratio": ratio if ratio and ratio > 0 else None,
        }


def bars_upsert(*, market: Market, bars: list[dict]) -> int:
    """Insert or update the market's bars on (market, time); returns how many were written."""
    if not bars:
        return 0
    objects = [
        Bar(market=market, time=ms_to_datetime(b["ts"]), **{k: b[k] for k in BAR_FIELDS})
        for b in bars
    ]
    Bar.objects.bulk_create(
        objects,
        batch_size=1000,
        update_conflicts=True,
        unique_fields=["market", "time"],
        update_fields=BAR_FIELDS,
    )
    return len(objects)


def market_gaps(*, market: Market, start: datetime | None = None) -> list[tuple[int, int]]:
    """Missing steps between the market's bars (from `start` on), as [first, end) ranges in ms."""
    step = timedelta(milliseconds=market.step_ms)
    bars = Bar.objects.filter(market=market)
    if start is not None:
        bars = bars.filter(time__gte=start)
    rows = (
        bars.annotate(following=Window(Lead("time"), order_by=F("time").asc()))
        .filter(following__gt=F("time") + step)
        .values_list("time", "following")
    )
    return [(datetime_to_ms(a) + market.step_ms, datetime_to_ms(b)) for a, b in rows]


def market_symbol(*, market: Market, connector: Connector) -> str:
    """The market's ccxt symbol, learning it (and the contract size) from the exchange once."""
    ccxt_market = connector.market(market.ccxt_symbol or market.symbol)
    size = connector.contract_size(ccxt_market["symbol"])
    changed = []
    if market.ccxt_symbol != ccxt_market["symbol"]:
        market.ccxt_symbol = ccxt_market["symbol"]
        changed.append("ccxt_symbol")
    if abs(market.contract_size - size) > 1e-12:
        market.contract_size = size
        changed.append("contract_size")
    if not connector.has_taker_volume and market.long_share == "taker":
        log.info(
            "%s publishes no taker volume: %s switched to %s",
            connector.slug,
            market,
            connector.default_long_share,
        )
        market.long_share = connector.default_long_share
        changed.append("long_share")
    if changed:
        market.save(update_fields=changed)
    return ccxt_market["symbol"]


@dataclass
class IngestPlan:
    """What one run fetches: the steps after the last bar, and gaps between bars to refill."""

    end: int
    tail: tuple[int, int] | None
    gaps: list[tuple[int, int]]

    @property
    def ranges(self) -> list[tuple[int, int]]:
        return ([self.tail] if self.tail else []) + self.gaps


def ingest_plan(*, market: Market, connector: Connector, backfill: bool) -> IngestPlan:
    """Backfill everything the exchange keeps when asked or when there are no bars; otherwise the
    steps after the last bar, plus up to GAPS_PER_RUN gaps (newest first), each tried at most
    once per GAP_RETRY_SECONDS so a hole the exchange cannot fill is not asked for every minute."""
    step = market.step_ms
    end = connector.now_ms() // step * step
    reach = min(connector.history_ms, settings.LIQSITE_BACKFILL_DAYS * DAY_MS)
    horizon = (end - reach) // step * step
    last = market.bars.aggregate(last=Max("time"))["last"]
    if backfill or last is None:
        return IngestPlan(end, (horizon, end) if horizon < end else None, [])
    last_ms = datetime_to_ms(last)
    tail = (max(last_ms + step, horizon), end) if last_ms + step < end else None
    gaps = [
        gap
        for gap in reversed(market_gaps(market=market, start=ms_to_datetime(horizon)))
        if cache.get(gap_key(market.pk, gap)) is None
    ]
    return IngestPlan(end, tail, gaps[:GAPS_PER_RUN])


def gap_key(market_id: int, gap: tuple[int, int]) -> str:
    return f"ingest:gap:{market_id}:{gap[0]}:{gap[1]}"


def day_chunks(start: int, end: int) -> list[tuple[int, int]]:
    """[start, end) cut at UTC midnights."""
    chunks, cursor = [], start
    while cursor < end:
        stop = min(end, (cursor // DAY_MS + 1) * DAY_MS)
        chunks.append((cursor, stop))
        cursor = stop
    return chunks


def stamp_range(start: int, end: int, step_ms: int) -> tuple[int, int]:
    """The stamps of the rows whose snapshots close the steps opening in [start, end), whatever
    the stamping: snapshots at [start + step, end + step), stamped then or 5 minutes before."""
    return start + step_ms - SNAPSHOT_PERIOD_MS, end + step_ms


def fetch_series(
    *, connector: Connector, symbol: str, start: int, end: int, step_ms: int, report: IngestReport
) -> Series:
    """The series for steps opening in [start, end); optional ones that fail are left empty."""
    first, last = stamp_range(start, end, step_ms)
    series = Series(
        candles=connector.candles(symbol, start, end),
        open_interest=connector.open_interest(symbol, first, last),
        taker_expected=connector.has_taker_volume,
    )
    series.ratios = _optional(
        report, "long/short ratio", connector.long_short_ratio, symbol, first, last
    )
    series.taker = _optional(report, "taker volume", connector.taker_volume, symbol, start, end)
    series.positioning = {
        name: _optional(
            report, f"positioning {name}", connector.positioning, name, symbol, first, last
        )
        for name in connector.positioning_series
    }
    return series


def _optional(report: IngestReport, what: str, fetch, *args) -> list:
    try:
        return fetch(*args)
    except RETRYABLE_ERRORS:
        raise
    except Exception as exc:
        report.warnings.append(f"{what}: {exc}")
        log.warning("%s unavailable for market %s: %s", what, report.market_id, exc)
        return []


def _ingest_day(
    market: Market,
    connector: Connector,
    symbol: str,
    span: tuple[int, int],
    funding: list[Point],
    report: IngestReport,
) -> None:
    """Fetch the steps opening in span (at most a UTC day) and upsert their bars at once."""
    start, end = span
    step = market.step_ms
    series = fetch_series(
        connector=connector, symbol=symbol, start=start, end=end, step_ms=step, report=report
    )
    series.funding = funding
    stamping = market.metrics_stamp if market.metrics_stamp != "auto" else connector.oi_stamping
    bars, skipped = steps_to_bars(
        start=start,
        end=end,
        step_ms=step,
        series=series,
        long_share=market.long_share,
        stamping=stamping,
    )
    with transaction.atomic():
        metrics_rows_upsert(market=market, rows=raw_rows(series, stamping), source="rest")
        report.written += bars_upsert(market=market, bars=bars)
    report.skipped += skipped
    _check_stamping(market, connector, series, stamping, report)


def raw_rows(series: Series, stamping: str) -> list[dict]:
    """The open-interest rows as fetched, with the ratios stamped alike, for maps.metrics_rows (a
    series the exchange does not publish stays None)."""
    ratios = {p.ts: p.value for p in series.ratios}
    positioning = {
        name: {p.ts: p.value for p in points} for name, points in series.positioning.items()
    }
    stamps = np.array([p.ts for p in series.open_interest], dtype=np.int64)
    snapshots = snapshot_times(stamps, stamping).tolist()
    return [
        {
            "stamped_ms": p.ts,
            "snapshot_ms": snapshot,
            "open_interest": p.value,
            "open_interest_value": p.usd,
            "long_short_ratio": ratios.get(p.ts),
            **{name: values.get(p.ts) for name, values in positioning.items()},
        }
        for p, snapshot in zip(series.open_interest, snapshots, strict=True)
    ]


def _check_stamping(market, connector, series: Series, stamping: str, report) -> None:
    """Check the rows' stamping against the candles' closes (where the exchange gives the open
    interest's USD value) and keep the result on the market; a contradiction is a warning."""
    points = [p for p in series.open_interest if p.usd]
    if len(points) < CHECK_MIN_ROWS:
        return
    candles = series.candles
    check = check_stamping(
        source=f"{connector.slug} REST {iso_utc(points[0].ts)[:10]}",
        stamps=np.array([p.ts for p in points], dtype=np.int64),
        implied=np.array([p.usd / p.value if p.value else np.nan for p in points]),
        close_times=np.array([c.ts + MINUTE_MS for c in candles], dtype=np.int64),
        closes=np.array([c.close for c in candles]),
        stamping=stamping,
    )
    market_metrics_check_store(market=market, checks=[check], stamping=stamping)
    if check.contradicts:
        report.warnings.append(check.describe())
        log.warning("market %s: %s", market.pk, check.describe())


def market_ingest(
    *, market: Market, backfill: bool = False, connector: Connector | None = None
) -> IngestReport:
    """Fetch and store the market's missing bars (all the exchange keeps when `backfill`).

    A demo market is refused: real bars must never mix into simulated ones."""
    if market.is_demo:
        raise ConnectorError(f"{market} holds demo data: it is never ingested from an exchange")
    if not market.exchange.ccxt_id:
        raise ConnectorError(f"{market.exchange} has no ccxt id: nothing to ingest from")
    connector = connector or connector_for(market.exchange.ccxt_id)
    symbol = market_symbol(market=market, connector=connector)
    plan = ingest_plan(market=market, connector=connector, backfill=backfill)
    report = IngestReport(market_id=market.pk, ranges=plan.ranges)
    funding: list[Point] = []
    if plan.ranges:
        since = min(a for a, _ in plan.ranges) - FUNDING_LOOKBACK_MS
        funding = _optional(report, "funding", connector.funding, symbol, since, plan.end + 1)
    for start, stop in plan.ranges:
        for a, b in day_chunks(start, stop):
            _ingest_day(market, connector, symbol, (a, b), funding, report)
        if (start, stop) in plan.gaps:
            cache.set(gap_key(market.pk, (start, stop)), 1, GAP_RETRY_SECONDS)
    last = market.bars.usable().aggregate(last=Max("time"))["last"]
    report.last_bar_ms = datetime_to_ms(last) if last else None
    report.refilled_gap = bool(plan.gaps) and report.written > 0
    Market.objects.filter(pk=market.pk).update(last_bar_at=last, last_ingest_at=timezone.now())
    log.info(report.summary())
    return report
