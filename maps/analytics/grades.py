"""Reliability grades: how far a market's map can be trusted, A (most) to D (least), with reasons.

A map is only as good as what feeds it. Each criterion below is graded on its own, from the
market's bars, its latest calibration and its coin's other markets; the market's grade is the
worst of the criteria that could be judged. The thresholds are the rules written in
docs/model.md ("Reliability grades"); change them there too.

- open interest in USD: few leveraged positions leave few liquidation levels to find;
- trading: average traded USD per 5 minutes and the share of steps without a trade (a thin book
  moves in jumps, so price paths and long/short splits are noisy);
- completeness: the share of the last 7 days' steps that are stored (gaps and skipped steps);
- history: how many days of bars there are (positions opened before the first bar are unknown);
- model skill, when calibrated on enough real liquidations: the correlation of estimated and real
  liquidations, and the zone hit rate against the coverage (no better than the coverage = no skill);
- share of the coin's open interest on this exchange, among the exchanges tracked here (a venue
  holding a sliver of the coin's positions shows a sliver of the picture).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from maps.formatting import share as pct_share
from maps.formatting import usd

GRADES = ("A", "B", "C", "D")
FIVE_MINUTES_MS = 300_000
DAY_MS = 86_400_000
COMPLETENESS_WINDOW_MS = 7 * DAY_MS
MIN_CALIBRATION_EVENTS = 30

# Lower bounds of A, B and C; below the last one is D (coin share stops at C).
OI_USD = (100e6, 20e6, 5e6)
TRADED_USD_PER_5MIN = (1e6, 100e3, 10e3)
IDLE_SHARE = (0.01, 0.05, 0.20)  # upper bounds of A, B, C
COMPLETENESS = (0.995, 0.98, 0.90)
HISTORY_DAYS = (7, 3, 1)
SKILL_LIFT = (0.20, 0.10, 0.02)  # zone hit rate minus coverage
SKILL_CORR = (0.5, 0.3)  # A and B also need this correlation
COIN_SHARE = (0.10, 0.03)


@dataclass(frozen=True)
class Skill:
    """A calibration's accuracy figures (None where it could not measure one)."""

    events: int
    corr_long: float | None
    corr_short: float | None
    hit_rate: float | None
    coverage: float | None


@dataclass(frozen=True)
class GradeInputs:
    oi_usd: float | None
    traded_usd_per_5min: float | None
    idle_share: float | None
    completeness: float | None
    missing_steps: int
    history_days: float
    skill: Skill | None = None
    coin_share: float | None = None
    coin_markets: int = 1
    base: str = ""


@dataclass(frozen=True)
class Reason:
    criterion: str
    grade: str | None  # None: could not be judged, does not count
    text: str

    def as_dict(self) -> dict:
        return {"criterion": self.criterion, "grade": self.grade, "text": self.text}


@dataclass(frozen=True)
class Grade:
    grade: str
    reasons: list[Reason]

    @property
    def summary(self) -> str:
        """The reasons that set the grade, in one line (all of them when the grade is A)."""
        worst = [r.text for r in self.reasons if r.grade == self.grade]
        return "; ".join(worst)


def bars_activity(
    *,
    ts: np.ndarray,
    close: np.ndarray,
    volume: np.ndarray,
    open_interest: np.ndarray,
    step_ms: int,
) -> dict:
    """The bar-derived inputs over the last 7 days ending at the last bar's end: open interest
    in USD at the last bar, average traded USD per 5 minutes, share of steps without a trade,
    share of the expected steps stored (and how many are missing), and days of history."""
    ts = np.asarray(ts, dtype=np.int64)
    if len(ts) == 0:
        return {
            "oi_usd": None,
            "traded_usd_per_5min": None,
            "idle_share": None,
            "completeness": None,
            "missing_steps": 0,
            "history_days": 0.0,
        }
    end = int(ts[-1]) + step_ms
    first = max(int(ts[0]), end - COMPLETENESS_WINDOW_MS)
    recent = ts >= first
    expected = max(1, (end - first) // step_ms)
    present = int(recent.sum())
    traded = np.asarray(volume, dtype=np.float64)[recent] * np.asarray(close)[recent]
    return {
        "oi_usd": float(open_interest[-1] * close[-1]),
        "traded_usd_per_5min": float(traded.mean()) * FIVE_MINUTES_MS / step_ms,
        "idle_share": float(np.mean(traded <= 0)),
        "completeness": min(1.0, present / expected),
        "missing_steps": max(0, expected - present),
        "history_days": (end - int(ts[0])) / DAY_MS,
    }


def market_grade(inputs: GradeInputs) -> Grade:
    """The grade (worst of the judged criteria) and every criterion's reason, worst first."""
    reasons = [
        _open_interest(inputs.oi_usd),
        _trading(inputs.traded_usd_per_5min, inputs.idle_share),
        _completeness(inputs.completeness, inputs.missing_steps),
        _history(inputs.history_days),
        _skill(inputs.skill),
        _coin_share(inputs.coin_share, inputs.coin_markets, inputs.base),
    ]
    judged = [r.grade for r in reasons if r.grade is not None]
    grade = max(judged, key=GRADES.index) if judged else "D"
    order = {g: i for i, g in enumerate(reversed(GRADES))}
    reasons.sort(key=lambda r: order.get(r.grade, len(GRADES)))
    return Grade(grade, reasons)


def _level(value: float, bounds: tuple[float, ...]) -> str:
    """The grade of a value against descending lower bounds: A at or above the first."""
    for grade, bound in zip(GRADES, bounds, strict=False):
        if value >= bound:
            return grade
    return GRADES[len(bounds)]


def _worse(*grades: str) -> str:
    return max(grades, key=GRADES.index)


def _open_interest(oi_usd: float | None) -> Reason:
    if oi_usd is None:
        return Reason("open_interest", "D", "No open interest known yet")
    grade = _level(oi_usd, OI_USD)
    text = f"Open interest {usd(oi_usd)}"
    if grade == "D":
        text += ": few leveraged positions to map"
    return Reason("open_interest", grade, text)


def _trading(per_5min: float | None, idle: float | None) -> Reason:
    if per_5min is None or idle is None:
        return Reason("trading", "D", "No trades stored yet")
    by_volume = _level(per_5min, TRADED_USD_PER_5MIN)
    by_idle = _level(-idle, tuple(-b for b in IDLE_SHARE))
    grade = _worse(by_volume, by_idle)
    idle_text = "no step without a trade" if idle == 0 else f"{idle:.0%} of steps without a trade"
    text = f"{usd(per_5min)} traded per 5 minutes on average, {idle_text}"
    if grade in ("C", "D"):
        text = "Sparse trading: " + text
    return Reason("trading", grade, text)


def _completeness(completeness: float | None, missing: int) -> Reason:
    if completeness is None:
        return Reason("completeness", "D", "No bars stored yet")
    grade = _level(completeness, COMPLETENESS)
    if missing == 0:
        return Reason("completeness", grade, "Every step of the last 7 days is stored")
    text = f"{pct_share(completeness)} of the last 7 days' steps stored ({missing} missing)"
    return Reason("completeness", grade, text)


def _history(days: float) -> Reason:
    grade = _level(days, HISTORY_DAYS)
    if grade == "A":
        return Reason("history", grade, f"{days:.0f} days of history")
    return Reason("history", grade, f"Only {days:.1f} days of history: older positions are unknown")


def _skill(skill: Skill | None) -> Reason:
    if skill is None:
        return Reason("skill", None, "Not scored: no real liquidations recorded for a calibration")
    if skill.events < MIN_CALIBRATION_EVENTS:
        return Reason(
            "skill",
            None,
            f"Not scored: {skill.events} real liquidations, fewer than {MIN_CALIBRATION_EVENTS}",
        )
    corrs = [c for c in (skill.corr_long, skill.corr_short) if c is not None]
    corr = float(np.mean(corrs)) if corrs else None
    if skill.hit_rate is None or skill.coverage is None:
        if corr is None:
            return Reason("skill", None, "Not scored: the calibration measured no accuracy")
        grade = _level(corr, (*SKILL_CORR, 0.1))
        return Reason("skill", grade, f"Correlation {corr:.2f} with {skill.events} real ones")
    lift = skill.hit_rate - skill.coverage
    grade = _level(lift, SKILL_LIFT)
    if corr is not None and grade in ("A", "B"):
        grade = _worse(grade, _level(corr, (*SKILL_CORR, -1.0)))
    text = (
        f"Zone hit rate {pct_share(skill.hit_rate)} vs {pct_share(skill.coverage)} coverage"
        + (f", correlation {corr:.2f}" if corr is not None else "")
        + f" on {skill.events} real liquidations"
    )
    if grade == "D":
        text = "No skill: " + text
    return Reason("skill", grade, text)


def _coin_share(share: float | None, markets: int, base: str) -> Reason:
    coin = base or "the coin"
    if share is None or markets < 2:
        return Reason("coin_share", None, f"Only exchange tracked here for {coin}")
    grade = _level(share, COIN_SHARE)
    text = f"Holds {pct_share(share)} of {coin}'s open interest on the {markets} exchanges tracked"
    if grade == "C":
        text += ": the coin page sums them all"
    return Reason("coin_share", grade, text)
