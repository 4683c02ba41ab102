"""Whale tracking: top traders against the crowd, unusual open interest and flow, and the
screener across all markets.

`stats` (pure numpy, no Django) owns the numbers: long % of the exchanges' long/short ratios
(whales: the top-trader position ratio; retail: the global account ratio), their delta and trend
in words, robust z-scores against the market's own trailing week and the anomaly feed with open
interest classified against price. `screener` (pure Python) sorts, filters and colours the rows.
The Django side follows the map's path: `selectors` (reads: a market's positioning inputs from its
bars and stored metrics rows, the stored results), `services` (compute and store
`PositioningSnapshot`), `tasks` and `receivers` (refresh after each recompute of the maps),
`pages` (the positioning panel and the screener table), `views`, `api`, `charts` (the heatmap's
z-score colours and anomaly markers) and `alerts` (anomaly and divergence alert kinds).
"""
