"""Numeric work beside the engine: pure numpy, no Django (like maps/engine/).

Each module owns one family of numbers that the pages, the API and the alerts read from stored
results: risk.py (position planner), signals.py (cascades, sweeps, reversals, backtest),
levels.py (support/resistance, volume profile, RSI, confluence), orderbook.py (order-book walls
and depth), whales.py (positioning and anomalies), grades.py (reliability grades). Every function
takes arrays and returns plain data, so each can be tested and benchmarked without a database.
"""
