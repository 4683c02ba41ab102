"""Signal receivers, connected in MapsConfig.ready(): fresh snapshots mean fresh signals."""

from __future__ import annotations

from django.db import transaction


def snapshots_computed_refresh_signals(sender: object, *, market_id: int, **kwargs: object) -> None:
    """Queue the refresh of a market's signals once its new snapshots are committed. It goes to
    the `followup` queue, which a compute worker only takes from when no market's maps wait, so
    even a refresh that computes them all (seconds, not the fraction of one that extending stored
    ones takes) never delays the next step's snapshots."""
    from maps.market_signals.tasks import market_signals_refresh

    transaction.on_commit(lambda: market_signals_refresh.delay(market_id))
