"""Signals and replay: cascades, sweeps, reversal checklists, the backtest of the magnets, and the
map of any past moment.

The numbers come from `maps.analytics.signals` (pure numpy). This package owns their Django side:
`selectors` (reads: per-step real liquidations, stored results), `services` (load a market's
bars, run the analytics, store `MarketSignals` and `MarketBacktest`), `replay` (`?at=`: the engine
run on demand for a past moment, cached, served through the existing page and API code),
`pages` (what the signals and backtest panels show), `charts` (the marks drawn on the heatmap),
`views` and `api` (the backtest fragment and the JSON/CSV documents), `tasks` and `receivers`
(refresh after each snapshot, the daily backtest).
"""
