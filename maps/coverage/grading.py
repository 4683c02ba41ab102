"""Reliability grades on the Django side: the inputs gathered from a market's bars, its latest
calibration and its coin's other markets; the rules are maps/analytics/grades.py."""

from __future__ import annotations

from datetime import datetime

from django.db.models import F, FloatField, OuterRef, Subquery

from maps.analytics.grades import Grade, GradeInputs, Skill, bars_activity, market_grade
from maps.engine.types import Bars
from maps.models import Bar, Calibration, Market


def market_grade_refresh(*, market: Market, bars: Bars, now: datetime) -> Grade:
    """Grade the market from its bars (the last 7 days of them), its latest calibration and the
    open interest of its coin's other tracked markets; keep the grade, its reasons and the open
    interest on the market."""
    activity = bars_activity(
        ts=bars.ts,
        close=bars.close,
        volume=bars.volume,
        open_interest=bars.open_interest,
        step_ms=market.step_ms,
    )
    share, markets = coin_share(market=market, oi_usd=activity["oi_usd"])
    inputs = GradeInputs(
        **activity,
        skill=market_skill(market=market),
        coin_share=share,
        coin_markets=markets,
        base=market.base.upper(),
    )
    grade = market_grade(inputs)
    market_grade_store(market=market, grade=grade, oi_usd=activity["oi_usd"], now=now)
    return grade


def market_skill(*, market: Market) -> Skill | None:
    calibration = Calibration.objects.filter(market=market).order_by("-computed_at").first()
    if calibration is None:
        return None
    return Skill(
        events=calibration.events_used,
        corr_long=calibration.corr_long,
        corr_short=calibration.corr_short,
        hit_rate=calibration.hit_rate,
        coverage=calibration.coverage,
    )


def coin_share(*, market: Market, oi_usd: float | None) -> tuple[float | None, int]:
    """This market's share of its coin's open interest over the coin's tracked markets (demo
    with demo, real with real), each valued at its last bar, and how many they are."""
    if oi_usd is None or oi_usd <= 0:
        return None, 1
    last = Bar.objects.filter(market=OuterRef("pk")).order_by("-time")
    values = (
        Market.objects.tracked()
        .filter(base__iexact=market.base, is_demo=market.is_demo)
        .exclude(pk=market.pk)
        .annotate(
            usd=Subquery(
                last.annotate(usd=F("open_interest") * F("close")).values("usd")[:1],
                output_field=FloatField(),
            )
        )
        .filter(usd__gt=0)
        .values_list("usd", flat=True)
    )
    others = list(values)
    return oi_usd / (oi_usd + sum(others)), 1 + len(others)


def market_grade_store(
    *, market: Market, grade: Grade, oi_usd: float | None, now: datetime
) -> None:
    """Keep the grade, its reasons and the open interest on the market (and this instance)."""
    market.grade = grade.grade
    market.grade_reasons = [r.as_dict() for r in grade.reasons]
    market.graded_at = now
    market.oi_usd = oi_usd
    Market.objects.filter(pk=market.pk).update(
        grade=market.grade, grade_reasons=market.grade_reasons, graded_at=now, oi_usd=oi_usd
    )
