"""Writes: which of an exchange's perpetuals are tracked (track_markets and the admin action)."""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass, field
from datetime import datetime

from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from maps.connectors import CONNECTORS, Connector, ConnectorError, Perpetual, connector_for
from maps.formatting import usd
from maps.models import Exchange, Market
from maps.services import exchange_demo_refresh

log = logging.getLogger(__name__)

EXCHANGE_NAMES = {"binance": "Binance", "bybit": "Bybit", "okx": "OKX"}
QUOTE = re.compile(r"^[A-Z0-9]{2,10}$")


@dataclass
class TrackReport:
    """What one reading of an exchange's list changed, market by market."""

    exchange: str
    quote: str
    min_oi_usd: float
    listed: int = 0
    tracked: list[str] = field(default_factory=list)  # created and tracked, or tracked again
    kept: list[str] = field(default_factory=list)  # tracked before and still above
    untracked: list[str] = field(default_factory=list)  # fell below the threshold
    delisted: list[str] = field(default_factory=list)  # gone from the list or not trading
    below: int = 0  # listed below the threshold and not tracked
    by_hand: list[str] = field(default_factory=list)  # below, but tracked by hand: left tracked
    demo: list[str] = field(default_factory=list)  # demo markets: never touched
    unknown_oi: list[str] = field(default_factory=list)  # no open interest given: left as is

    def lines(self) -> list[str]:
        threshold = usd(self.min_oi_usd)
        out = [
            f"{self.exchange}: {self.listed} {self.quote} perpetuals listed, "
            f"{len(self.tracked) + len(self.kept)} at or above {threshold} tracked "
            f"({len(self.tracked)} newly), {self.below} below left untracked"
        ]
        labelled = [
            ("newly tracked", self.tracked),
            (f"untracked (open interest below {threshold}, data kept)", self.untracked),
            ("untracked (delisted, data kept)", self.delisted),
            ("below the threshold but tracked by hand: left tracked", self.by_hand),
            ("holding demo data: left alone", self.demo),
            ("no open interest given: left as they were", self.unknown_oi),
        ]
        out += [f"  {label}: {', '.join(items)}" for label, items in labelled if items]
        return out


def connector_class(name: str) -> type[Connector]:
    """The connector for an exchange named by slug (binance) or ccxt id (binanceusdm)."""
    for ccxt_id, cls in CONNECTORS.items():
        if name.lower() in (ccxt_id, cls.slug):
            return cls
    known = ", ".join(sorted(cls.slug for cls in CONNECTORS.values()))
    raise ConnectorError(f"unknown exchange {name!r}: use one of {known}")


def track_arguments_check(*, quote: str, min_oi_usd: float) -> None:
    if not QUOTE.match(quote):
        raise ConnectorError(f"quote {quote!r} is not a currency code like USDT")
    if not (isinstance(min_oi_usd, int | float) and math.isfinite(min_oi_usd)) or min_oi_usd < 0:
        raise ConnectorError(
            f"the minimum open interest must be a USD amount >= 0, not {min_oi_usd}"
        )


def exchange_for_connector(cls: type[Connector]) -> Exchange:
    """The Exchange row the connector feeds (the one with its slug first), created if missing."""
    exchange = (
        Exchange.objects.filter(ccxt_id=cls.ccxt_id, slug=cls.slug).first()
        or Exchange.objects.filter(ccxt_id=cls.ccxt_id).order_by("pk").first()
    )
    if exchange is None:
        exchange, _ = Exchange.objects.get_or_create(
            slug=cls.slug,
            defaults={
                "name": EXCHANGE_NAMES.get(cls.slug, cls.slug.title()),
                "ccxt_id": cls.ccxt_id,
            },
        )
    if not exchange.ccxt_id:
        exchange.ccxt_id = cls.ccxt_id
        exchange.save(update_fields=["ccxt_id"])
    elif exchange.ccxt_id != cls.ccxt_id:
        raise ConnectorError(
            f"the exchange {exchange.slug!r} is fed by {exchange.ccxt_id!r}, not {cls.ccxt_id!r}"
        )
    return exchange


def exchange_markets_track(
    *,
    exchange: str,
    quote: str = "USDT",
    min_oi_usd: float = 5e6,
    connector: Connector | None = None,
    now: datetime | None = None,
) -> TrackReport:
    """Read the exchange's linear perpetuals settled in `quote` and their open interest; create
    and track those at or above `min_oi_usd`, untrack those tracked by this command that fell
    below, and untrack every market gone from the list or no longer trading. Nothing stored for
    a market is ever deleted; demo markets are never touched. One transaction."""
    quote = quote.upper()
    track_arguments_check(quote=quote, min_oi_usd=min_oi_usd)
    cls = connector_class(exchange)
    connector = connector or connector_for(cls.ccxt_id)
    perpetuals = connector.perpetuals(quote)
    now = now or timezone.now()
    with transaction.atomic():
        venue = exchange_for_connector(cls)
        report = TrackReport(venue.name, quote, float(min_oi_usd), listed=len(perpetuals))
        known = {m.symbol: m for m in venue.markets.select_for_update().filter(quote=quote)}
        for perpetual in perpetuals:
            market = known.pop(perpetual.symbol, None)
            _listed_apply(venue, market, perpetual, connector, report, now)
        for market in known.values():
            _gone_apply(market, report, now)
        exchange_demo_refresh(exchange=venue)
    for line in report.lines():
        log.info(line)
    return report


def _listed_apply(
    venue: Exchange,
    market: Market | None,
    perpetual: Perpetual,
    connector: Connector,
    report: TrackReport,
    now: datetime,
) -> None:
    above = perpetual.oi_usd is not None and perpetual.oi_usd >= report.min_oi_usd
    if market is None:
        if perpetual.active and above:
            _market_create(venue, perpetual, connector, report, now)
        elif perpetual.active:
            report.below += 1
        return
    if market.is_demo:
        report.demo.append(market.symbol)
        return
    market.listed_at = now
    if not perpetual.active:
        _untrack(market, f"untracked on {now:%Y-%m-%d}: listed but no longer trading (data kept)")
        market.delisted_at = market.delisted_at or now
        report.delisted.append(market.symbol)
    elif perpetual.oi_usd is None:
        report.unknown_oi.append(market.symbol)
    else:
        market.delisted_at = None
        market.listed_oi_usd = perpetual.oi_usd
        _threshold_apply(market, perpetual.oi_usd, above, report, now)
    market.save()


def _threshold_apply(
    market: Market, oi_usd: float, above: bool, report: TrackReport, now: datetime
) -> None:
    threshold = usd(report.min_oi_usd)
    if above and market.tracked:
        report.kept.append(market.symbol)
    elif above:
        market.tracked = market.auto_tracked = True
        market.tracking_note = f"tracked on {now:%Y-%m-%d}: open interest {usd(oi_usd)}"
        report.tracked.append(market.symbol)
    elif market.tracked and market.auto_tracked:
        note = f"open interest {usd(oi_usd)} below {threshold} (data kept)"
        _untrack(market, f"untracked on {now:%Y-%m-%d}: {note}")
        report.untracked.append(market.symbol)
    elif market.tracked:
        report.by_hand.append(market.symbol)
    else:
        report.below += 1


def _gone_apply(market: Market, report: TrackReport, now: datetime) -> None:
    """A market the exchange no longer lists: untracked, its data kept."""
    if market.is_demo:
        return
    if market.tracked:
        _untrack(market, f"untracked on {now:%Y-%m-%d}: no longer listed (data kept)")
        report.delisted.append(market.symbol)
    market.delisted_at = market.delisted_at or now
    market.save()


def _untrack(market: Market, note: str) -> None:
    market.tracked = False
    market.auto_tracked = False
    market.tracking_note = note[:200]


def _market_create(
    venue: Exchange, perpetual: Perpetual, connector: Connector, report: TrackReport, now
) -> Market:
    slug = _free_slug(venue, perpetual)
    market = Market.objects.create(
        exchange=venue,
        symbol=perpetual.symbol,
        slug=slug,
        base=perpetual.base,
        quote=perpetual.quote,
        ccxt_symbol=perpetual.ccxt_symbol,
        contract_size=perpetual.contract_size,
        long_share=connector.default_long_share,
        tracked=True,
        auto_tracked=True,
        listed_oi_usd=perpetual.oi_usd,
        listed_at=now,
        tracking_note=f"tracked on {now:%Y-%m-%d}: open interest {usd(perpetual.oi_usd)}",
    )
    report.tracked.append(market.symbol)
    return market


def _free_slug(venue: Exchange, perpetual: Perpetual) -> str:
    """base + quote in lower case (btcusdt on every exchange), else the exchange's symbol."""
    taken = set(venue.markets.values_list("slug", flat=True))
    for candidate in (f"{perpetual.base}{perpetual.quote}", perpetual.symbol):
        slug = slugify(candidate)[:40]
        if slug and slug not in taken:
            return slug
    raise ConnectorError(f"{venue.name} {perpetual.symbol}: no free URL name")
