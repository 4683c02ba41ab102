"""Whole-exchange coverage, reliability grades and freshness under load.

services.py tracks every linear perpetual of an exchange above an open-interest threshold and
untracks those that fall below or are delisted (their data kept), and stores each market's
reliability grade (the rules are pure numpy in maps/analytics/grades.py). selectors.py tells
which tracked markets are stale and why, for /healthz and the admin.
"""
