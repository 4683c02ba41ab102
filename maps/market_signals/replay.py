"""Replay (`?at=`): the map of a pair as it stood at a past moment.

The engine runs on demand on the bars of the window that ended at that moment (exactly what the
stored snapshot held then) and the result is cached. It comes back as an unsaved MapSnapshot, so
the pair page, its widget, its charts and the API documents show it through their usual code.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime

from django.conf import settings
from django.core.cache import cache
from django.db.models import Max, Min

from maps import engine
from maps.engine.serialize import params_to_json
from maps.engine.types import EngineError
from maps.models import WINDOWS, MapSnapshot, Market, datetime_to_ms, ms_to_datetime
from maps.selectors import market_bars_arrays
from maps.services import snapshot_fields

CACHE_SECONDS = 3600
EPOCH_MS = re.compile(r"^\d{10,14}$")


class ReplayError(ValueError):
    """An `at` that is not a time, or a moment the market's data does not reach."""


def at_parse(text: str) -> int:
    """`at` as epoch ms: ISO 8601 (UTC unless it names an offset: 2025-05-30T14:00Z,
    2025-05-30 14:00, 2025-05-30) or epoch milliseconds."""
    value = text.strip()
    if EPOCH_MS.match(value):
        return int(value)
    try:
        moment = datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        raise ReplayError(
            f"at={text!r} is not a time: use ISO 8601 UTC (e.g. 2025-05-30T14:00Z) "
            "or epoch milliseconds"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return datetime_to_ms(moment)


def at_text(ms: int) -> str:
    """A moment as `at` writes it: 2025-05-30T14:00Z (seconds only when there are some)."""
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ" if moment.second else "%Y-%m-%dT%H:%MZ")


def market_span(*, market: Market) -> tuple[int, int] | None:
    """Open times (ms) of the market's first and last bars, or None without bars."""
    span = market.bars.aggregate(first=Min("time"), last=Max("time"))
    if span["first"] is None:
        return None
    return datetime_to_ms(span["first"]), datetime_to_ms(span["last"])


def replay_as_of(*, market: Market, at_ms: int, span: tuple[int, int] | None = None) -> int:
    """The open time of the last step that ended by `at_ms`: the map's as_of at that moment."""
    step = market.step_ms
    span = span if span is not None else market_span(market=market)
    if span is None:
        raise ReplayError(f"{market.symbol} has no data yet to replay")
    first, last = span
    if at_ms >= last + step:
        raise ReplayError(
            f"at={at_text(at_ms)} is not in the past of {market.symbol}'s data, which ends at "
            f"{at_text(last + step)}: leave at= out for the live map"
        )
    as_of = (
        market.bars.filter(time__lte=ms_to_datetime(at_ms - step))
        .order_by("-time")
        .values_list("time", flat=True)
        .first()
    )
    if as_of is None or datetime_to_ms(as_of) <= first:
        raise ReplayError(
            f"at={at_text(at_ms)} is before {market.symbol} had two steps of data: it starts at "
            f"{at_text(first)}"
        )
    return datetime_to_ms(as_of)


def replay_snapshot(*, market: Market, window: str, at_ms: int) -> MapSnapshot:
    """The market's map for `window` as it stood at `at_ms` (an unsaved MapSnapshot carrying
    `replay_at` and `replay_version`), computed once and cached."""
    span = market_span(market=market)
    as_of = replay_as_of(market=market, at_ms=at_ms, span=span)
    params = market.engine_params(window, max_columns=settings.LIQSITE_MAX_COLUMNS)
    start = ms_to_datetime(as_of + market.step_ms - WINDOWS[window])
    end = ms_to_datetime(as_of + market.step_ms)
    count = market.bars.filter(time__gte=start, time__lt=end).count()
    recipe = json.dumps([engine.ENGINE_VERSION, params_to_json(params), count], sort_keys=True)
    digest = hashlib.blake2b(recipe.encode(), digest_size=6).hexdigest()
    version = f"replay.{market.pk}.{window}.{as_of}.{digest}"
    fields = cache.get(version)
    if fields is None:
        bars = market_bars_arrays(market_id=market.pk, start=start, end=end)
        try:
            fields = snapshot_fields(engine.run(bars, params), compress=False)
        except EngineError as exc:
            raise ReplayError(f"no {window} map can be drawn at {at_text(at_ms)}: {exc}") from None
        cache.set(version, fields, CACHE_SECONDS)
    snapshot = MapSnapshot(market=market, window=window, **fields)
    snapshot.replay_at = at_ms
    snapshot.replay_version = version
    snapshot.replay_span = span
    return snapshot


def is_replay(snapshot: MapSnapshot | None) -> bool:
    return snapshot is not None and getattr(snapshot, "replay_version", None) is not None


def replay_range(*, market: Market, span: tuple[int, int] | None = None) -> dict | None:
    """The moments the pair can be replayed at, for the page's slider: from two steps after its
    first bar to the end of its last one, in whole hours (ms)."""
    span = span if span is not None else market_span(market=market)
    if span is None:
        return None
    first, last = span
    hour = 3_600_000
    low = -(-(first + 2 * market.step_ms) // hour) * hour
    high = (last + market.step_ms) // hour * hour
    if high <= low:
        return None
    return {"min": low, "max": high, "step": hour}
