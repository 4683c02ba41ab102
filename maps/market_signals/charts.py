"""What the pair's heatmap draws of the signals (maps.figures.signals draws it): the cascades on
the price line, the sweeps at their wicks and, on a replay, the price path that followed the
moment. Plain lists and words, shaped here so the drawing code stays unaware of signals."""

from __future__ import annotations

import numpy as np

from maps.formatting import usd


def cascade_marks(
    cascades: list[dict], times: np.ndarray, closes: np.ndarray, step_ms: int
) -> dict:
    """Each cascade as a stretch of the closes (at step ends) from the close before it to its
    last close, and a marker at its extreme."""
    lines, marks = [], []
    for c in cascades:
        keep = (times >= c["start"]) & (times <= c["end"] + step_ms)
        xs, ys = times[keep] + 0.0, closes[keep]
        if len(xs) < 2:
            xs = np.array([c["start"], c["end"] + step_ms], dtype=float)
            ys = np.array([c["price_start"], c["price_extreme"]])
        lines.append({"xs": xs.tolist(), "ys": ys.tolist(), "side": c["side"]})
        marks.append(
            {
                "t": c["extreme_time"] + step_ms / 2,
                "price": c["price_extreme"],
                "side": c["side"],
                "what": f"{c['side']}s liquidated ({c['source']}), {usd(c['notional_usd'])}, "
                f"move {c['move_pct']:+.2f}%",
            }
        )
    return {"lines": lines, "marks": marks}


def sweep_marks(sweeps: list[dict], step_ms: int) -> list[dict]:
    """Each sweep at its wick: filled for a fake breakout, hollow when price stayed beyond the
    cluster, undecided while the horizon runs."""
    return [
        {
            "t": s["time"] + step_ms / 2,
            "price": s["wick_price"],
            "side": s["side"],
            "fake": s["fake"],
            "what": f"{_sweep_words(s)}; cluster {s['cluster']['price_low']:.6g} to "
            f"{s['cluster']['price_high']:.6g} ({usd(s['cluster']['notional_usd'])})",
        }
        for s in sweeps
    ]


def _sweep_words(sweep: dict) -> str:
    side = "long cluster below" if sweep["side"] == "long" else "short cluster above"
    outcome = {True: "fake breakout", False: "held beyond", None: "undecided"}[sweep["fake"]]
    return f"{side} swept, wick {sweep['depth_pct']:.2f}% beyond: {outcome}"


def replay_marks(moment_ms: int, times: np.ndarray, closes: np.ndarray) -> dict:
    """A replay's moment and the closes (at step ends) that followed it."""
    return {"moment": moment_ms, "times": (times + 0.0).tolist(), "closes": closes.tolist()}
