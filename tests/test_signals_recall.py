"""The cascades endpoint on simulated markets whose true liquidations are known: it finds the five
largest true episodes (recall >= 0.8) without flooding (at most three times as many cascades as
true episodes of that size), from real liquidations when the market has them, else from the
model's estimates."""

from __future__ import annotations

import numpy as np
import pytest
from django.urls import reverse

from tests.shock_market import found_by, shocks_scheduled

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("empty_cache")]

DAYS = 30


def cascades_of(client, market, window: str = "30d") -> dict:
    url = reverse("api:cascades", args=[market.exchange.slug, market.slug])
    response = client.get(url, {"window": window})
    assert response.status_code == 200, response.content
    return response.json()


@pytest.mark.slow
@pytest.mark.parametrize(("seed", "events"), [(21, True), (21, False), (34, False)])
def test_it_finds_the_five_largest_true_episodes_without_flooding(
    client, shocked_market, seed, events
):
    shocks = shocks_scheduled(np.random.default_rng(seed), DAYS, 9)
    market, sim = shocked_market(
        days=DAYS, shocks=shocks, events=events, seed=seed, windows=("30d",)
    )
    body = cascades_of(client, market)
    assert body["source"] == ("real" if events else "estimated")
    cascades = body["cascades"]
    largest = sim.episodes[:5]
    recall = sum(found_by(e, cascades) for e in largest) / len(largest)
    of_that_size = [e for e in sim.episodes if e.notional >= largest[-1].notional]
    assert recall >= 0.8
    assert len(cascades) <= 3 * len(of_that_size)
    assert all(c["source"] == body["source"] for c in cascades)
