"""Signal receivers, connected in MapsConfig.ready(): fresh snapshots mean fresh signals."""

from __future__ import annotations

from django.db import transaction

# A market without recent stored signals needs them all computed (seconds, not a fraction of
# one): that waits a little, so a burst of them (a deploy, new markets) never delays the next
# step's snapshots on the shared compute queue.
FULL_DELAY_SECONDS = 120


def snapshots_computed_refresh_signals(sender: object, *, market_id: int, **kwargs: object) -> None:
    """Queue the refresh of a market's signals once its new snapshots are committed: at once when
    it extends stored ones, FULL_DELAY_SECONDS later when it computes them all."""
    from maps.market_signals.services import signals_extendable
    from maps.market_signals.tasks import market_signals_refresh

    countdown = 0 if signals_extendable(market_id=market_id) else FULL_DELAY_SECONDS
    transaction.on_commit(
        lambda: market_signals_refresh.apply_async((market_id,), countdown=countdown)
    )
