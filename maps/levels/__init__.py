"""Confluence: support and resistance, volume profile, RSI and order-book walls beside the map.

This package owns the Django side of issue 13; its numbers come from `maps/analytics/levels.py`
and `maps/analytics/orderbook.py` (pure numpy). It keeps each tracked market's one-minute order
books (`books.py` fetches them through ccxt and refuses empty or crossed ones, `tasks.py`
snapshots every minute and prunes the rolling window, `demo.py` simulates them for the demo
markets) and, per map snapshot, its levels and each cluster's confluence (`services.py` computes
and stores them, `selectors.py` reads). `pages.py` shapes them for the pair page (the confluence
in the cluster table and the proximity widget, the levels card, the layer switches), `charts.py`
draws the chart layers and the indicator pane, `views.py` serves the levels page and card, and
`api.py` serves `/api/v1/<exchange>/<symbol>/levels` and `orderbook`.
"""
