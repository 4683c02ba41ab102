"""Keep what the v2.0 alignment stored, so open interest can be re-aligned (MODEL.md v2.1).

Before v2.1 every metrics row stamped T was read as the snapshot taken at T, so a Binance bar of
the step [t, t + step) holds the open interest and ratio of the row stamped t + step. Binance
stamps its rows with the period's start since 2024-03-04, so those bars carry the next step's open
interest. This migration rebuilds the raw rows from the bars of every real Binance market (source
`bars-v2.0`, nothing is deleted or changed in the bars) and marks the market for re-alignment;
`manage.py realign_open_interest` (also run by `make setup` and by the minute refresh) then
re-aligns the bars from those rows and recomputes the maps.
"""

from datetime import timedelta

from django.db import migrations

BATCH = 5000


def rebuild_rows(apps, schema_editor):
    Market = apps.get_model("maps", "Market")
    Bar = apps.get_model("maps", "Bar")
    MetricsRow = apps.get_model("maps", "MetricsRow")
    markets = Market.objects.filter(is_demo=False, exchange__ccxt_id="binanceusdm")
    for market in markets.iterator():
        step = timedelta(milliseconds=market.step_ms)
        bars = Bar.objects.filter(market_id=market.pk).order_by("time")
        if not bars.exists():
            continue
        batch = []
        for time, oi, ratio in bars.values_list(
            "time", "open_interest", "long_short_ratio"
        ).iterator(chunk_size=BATCH):
            stamp = time + step
            batch.append(
                MetricsRow(
                    market_id=market.pk,
                    stamped_at=stamp,
                    snapshot_at=stamp,
                    source="bars-v2.0",
                    open_interest=oi,
                    long_short_ratio=ratio,
                )
            )
            if len(batch) >= BATCH:
                MetricsRow.objects.bulk_create(batch, ignore_conflicts=True)
                batch = []
        MetricsRow.objects.bulk_create(batch, ignore_conflicts=True)
        Market.objects.filter(pk=market.pk).update(oi_realign_pending=True)


class Migration(migrations.Migration):
    dependencies = [("maps", "0004_metrics_rows_and_stamping")]

    operations = [migrations.RunPython(rebuild_rows, migrations.RunPython.noop)]
