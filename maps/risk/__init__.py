"""The position planner: a trader's own liquidation price against the map.

This package owns the Django side of issue 14; its numbers come from `maps/analytics/risk.py`
(pure numpy). It keeps each market's maintenance-margin brackets (`brackets.py` reads the
exchanges' payloads, `tables/` holds the recorded published tables, `load_brackets` stores them),
each snapshot's risk profile (hourly ATR and the fitted impact of liquidations on price), and
users' saved positions with their alerts. `services.py` writes and plans, `selectors.py` reads,
`pages.py` shapes the planner panel, `views.py` serves it (the pair page includes
`maps/_planner.html`), `api.py` serves `/api/v1/<exchange>/<symbol>/position` and `what-if`, and
`alerts.py` evaluates the position alerts that `accounts` checks after each snapshot.
"""
