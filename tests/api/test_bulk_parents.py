"""The bulk endpoints of the three child tables refuse a row whose parent is not the shop's, in
the words each published, derived from the one declaration of the parent (`TenantTable.parent`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from advanced.experiments.factories import ExperimentFactory
from growth.factories import AdCampaignFactory, SocialPostFactory
from tests.fixtures.api import assert_error
from tests.fixtures.tenants import Actor


@pytest.mark.parametrize(
    ("path", "parent_factory", "row", "field", "message"),
    [
        (
            "/api/v1/ad-performance/",
            AdCampaignFactory,
            lambda pk: {"campaign_id": pk, "date": "2026-03-01"},
            "campaign_id",
            "Campaign {} does not exist in this shop.",
        ),
        (
            "/api/v1/social-analytics/",
            SocialPostFactory,
            lambda pk: {"social_post_id": pk, "measured_at": "2026-03-01T12:00:00Z"},
            "social_post_id",
            "Social post {} does not exist in this shop.",
        ),
        (
            "/api/v1/experiment-results/",
            ExperimentFactory,
            lambda pk: {"experiment_id": pk, "variant_key": "control", "snapshot_date": "2026-03-01"},
            "experiment_id",
            "Experiment {} does not exist in this shop.",
        ),
    ],
    ids=["ad-performance", "social-analytics", "experiment-results"],
)
def test_a_row_naming_another_shops_parent_is_refused_with_its_published_message(
    owner_a: Actor,
    owner_b: Actor,
    path: str,
    parent_factory: Any,
    row: Callable[[int], dict[str, Any]],
    field: str,
    message: str,
) -> None:
    mine, theirs = parent_factory(shop=owner_a.shop), parent_factory(shop=owner_b.shop)
    body = assert_error(owner_a.client.post(f"{path}bulk/", [row(mine.pk), row(theirs.pk)], format="json"), 400)
    assert body["errors"] == [
        {"index": 1, "field": field, "code": "does_not_exist", "message": message.format(theirs.pk)}
    ]
