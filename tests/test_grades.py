"""Reliability grades: the rules (maps/analytics/grades.py), what the refresh stores, and where a
trader sees them (pair page, home table, API)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from maps.analytics.grades import GradeInputs, Skill, bars_activity, market_grade

STEP = 300_000
DAY = 86_400_000


def deep(**extra) -> GradeInputs:
    """A deep, complete, long-followed market: A on every criterion."""
    values = {
        "oi_usd": 5e9,
        "traded_usd_per_5min": 40e6,
        "idle_share": 0.0,
        "completeness": 1.0,
        "missing_steps": 0,
        "history_days": 30.0,
        "skill": None,
        "coin_share": 0.5,
        "coin_markets": 3,
        "base": "BTC",
    }
    return GradeInputs(**(values | extra))


def reason(grade, criterion: str):
    return next(r for r in grade.reasons if r.criterion == criterion)


def test_it_grades_a_deep_complete_market_a():
    grade = market_grade(deep())

    assert grade.grade == "A"
    assert {r.criterion for r in grade.reasons} == {
        "open_interest",
        "trading",
        "completeness",
        "history",
        "skill",
        "coin_share",
    }
    assert reason(grade, "skill").grade is None  # nothing to score it against: does not count
    assert reason(grade, "open_interest").text == "Open interest $5B"


@pytest.mark.parametrize(
    ("oi_usd", "expected"),
    [(2e8, "A"), (1e8, "A"), (5e7, "B"), (2e7, "B"), (6e6, "C"), (5e6, "C"), (4.9e6, "D")],
)
def test_it_grades_open_interest_by_its_usd_value(oi_usd, expected):
    grade = market_grade(deep(oi_usd=oi_usd))

    assert reason(grade, "open_interest").grade == expected
    assert grade.grade == expected


@pytest.mark.parametrize(
    ("per_5min", "idle", "expected"),
    [
        (2e6, 0.0, "A"),
        (2e6, 0.03, "B"),
        (2e6, 0.15, "C"),
        (2e6, 0.35, "D"),
        (5e5, 0.0, "B"),
        (2e4, 0.0, "C"),
        (5e3, 0.0, "D"),
    ],
)
def test_it_grades_trading_by_volume_and_steps_without_a_trade(per_5min, idle, expected):
    grade = market_grade(deep(traded_usd_per_5min=per_5min, idle_share=idle))

    assert reason(grade, "trading").grade == expected


def test_it_explains_sparse_trading_in_words():
    grade = market_grade(deep(traded_usd_per_5min=4_200.0, idle_share=0.42))

    assert reason(grade, "trading").text == (
        "Sparse trading: $4.2K traded per 5 minutes on average, 42% of steps without a trade"
    )
    assert grade.grade == "D"
    assert grade.reasons[0].criterion == "trading"  # the worst reason comes first


@pytest.mark.parametrize(
    ("completeness", "missing", "history", "expected"),
    [
        (1.0, 0, 30.0, "A"),
        (0.99, 20, 30.0, "B"),
        (0.95, 100, 30.0, "C"),
        (0.80, 400, 30.0, "D"),
        (1.0, 0, 5.0, "B"),
        (1.0, 0, 2.0, "C"),
        (1.0, 0, 0.5, "D"),
    ],
)
def test_it_grades_completeness_and_history(completeness, missing, history, expected):
    grade = market_grade(
        deep(completeness=completeness, missing_steps=missing, history_days=history)
    )

    assert grade.grade == expected


def test_it_counts_model_skill_only_with_enough_real_liquidations():
    few = market_grade(deep(skill=Skill(12, 0.9, 0.9, 0.9, 0.1)))
    none_measured = market_grade(deep(skill=Skill(500, None, None, None, None)))

    assert reason(few, "skill").grade is None
    assert "12 real liquidations, fewer than 30" in reason(few, "skill").text
    assert reason(none_measured, "skill").grade is None


@pytest.mark.parametrize(
    ("skill", "expected"),
    [
        (Skill(400, 0.7, 0.6, 0.70, 0.35), "A"),
        (Skill(400, 0.4, 0.35, 0.55, 0.40), "B"),
        (Skill(400, 0.1, 0.2, 0.70, 0.35), "C"),  # lifts hits, but weak correlation
        (Skill(400, 0.5, 0.5, 0.30, 0.32), "D"),  # no better than the coverage: no skill
        (Skill(400, 0.2, None, None, None), "C"),  # correlation only
    ],
)
def test_it_grades_skill_from_hit_rate_over_coverage_and_correlation(skill, expected):
    grade = market_grade(deep(skill=skill))

    assert reason(grade, "skill").grade == expected
    if expected == "D":
        assert reason(grade, "skill").text.startswith("No skill: Zone hit rate 30.0% vs 32.0%")


def test_it_grades_the_coins_share_but_never_below_c():
    small = market_grade(deep(coin_share=0.01))
    alone = market_grade(deep(coin_share=1.0, coin_markets=1))

    assert reason(small, "coin_share").grade == "C"
    assert small.grade == "C"
    assert "Holds 1.0% of BTC's open interest" in reason(small, "coin_share").text
    assert reason(alone, "coin_share").grade is None


def test_it_takes_the_worst_criterion_and_summarises_it():
    grade = market_grade(deep(oi_usd=3e6, traded_usd_per_5min=2e3, idle_share=0.5))

    assert grade.grade == "D"
    assert grade.summary == (
        "Open interest $3M: few leveraged positions to map; "
        "Sparse trading: $2K traded per 5 minutes on average, 50% of steps without a trade"
    )


def test_it_is_d_when_nothing_is_known():
    grade = market_grade(
        GradeInputs(
            oi_usd=None,
            traded_usd_per_5min=None,
            idle_share=None,
            completeness=None,
            missing_steps=0,
            history_days=0.0,
        )
    )

    assert grade.grade == "D"


def test_it_reads_activity_from_the_last_seven_days_of_bars():
    n = 10 * 288
    ts = np.arange(n, dtype=np.int64) * STEP
    keep = np.ones(n, dtype=bool)
    keep[-100:-40] = False  # 60 missing steps inside the last 7 days
    volume = np.full(n, 10.0)
    volume[-288:] = 0.0  # the last day without a trade
    close = np.full(n, 50.0)
    oi = np.full(n, 2e5)

    activity = bars_activity(
        ts=ts[keep], close=close[keep], volume=volume[keep], open_interest=oi[keep], step_ms=STEP
    )

    assert activity["oi_usd"] == 1e7
    assert activity["missing_steps"] == 60
    assert activity["completeness"] == pytest.approx(1 - 60 / (7 * 288))
    assert activity["history_days"] == pytest.approx(10.0)
    assert activity["idle_share"] == pytest.approx((288 - 60) / (7 * 288 - 60))
    assert activity["traded_usd_per_5min"] == pytest.approx(500.0 * (1 - activity["idle_share"]))


def test_it_scales_traded_usd_to_five_minutes_on_longer_steps():
    hour = 3_600_000
    ts = np.arange(48, dtype=np.int64) * hour
    ones = np.ones(48)

    activity = bars_activity(
        ts=ts, close=ones * 10, volume=ones * 1200, open_interest=ones, step_ms=hour
    )

    assert activity["traded_usd_per_5min"] == pytest.approx(1000.0)
    assert activity["completeness"] == 1.0


def test_it_has_no_activity_without_bars():
    empty = np.array([])

    activity = bars_activity(ts=empty, close=empty, volume=empty, open_interest=empty, step_ms=STEP)

    assert market_grade(GradeInputs(**activity)).grade == "D"


def test_a_market_that_improves_climbs_grades():
    thin = deep(oi_usd=4e6, traded_usd_per_5min=8e3, idle_share=0.3)
    grades = [
        market_grade(thin).grade,
        market_grade(replace(thin, oi_usd=8e6, traded_usd_per_5min=2e4, idle_share=0.1)).grade,
        market_grade(replace(thin, oi_usd=5e7, traded_usd_per_5min=3e5, idle_share=0.02)).grade,
        market_grade(deep()).grade,
    ]

    assert grades == ["D", "C", "B", "A"]
