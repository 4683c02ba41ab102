"""Signal receivers, connected in AccountsConfig.ready()."""

from __future__ import annotations

from django.db import transaction

from accounts.models import Alert


def snapshots_computed_check_alerts(
    sender: object, *, market_id: int, windows: list[str] | None = None, **kwargs: object
) -> None:
    """Queue the alert check of a market whose snapshots were just recomputed, if it has any."""
    from accounts.tasks import market_alerts_check

    if not Alert.objects.filter(watch__market_id=market_id, is_active=True).exists():
        return
    windows = list(windows) if windows is not None else None
    transaction.on_commit(lambda: market_alerts_check.delay(market_id, windows))
