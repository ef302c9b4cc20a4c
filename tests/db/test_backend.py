"""The database backend: prepared statements on, and batches that fit the parameter limit."""

from __future__ import annotations

import datetime

import pytest
from django.db import connection

from config.postgresql.base import MAX_PARAMETERS
from growth.factories import AdCampaignFactory
from growth.models import AdPerformance
from tenancy.scope import atomic_scope, service_scope

pytestmark = pytest.mark.django_db


def test_server_side_binding_is_on_by_default() -> None:
    assert connection.settings_dict["OPTIONS"]["server_side_binding"] is True
    assert connection.vendor == "postgresql"


def test_bulk_create_beyond_the_parameter_limit_is_split_into_statements_that_fit() -> None:
    # 10 columns x 7,000 rows = 70,000 values: one statement could not carry them all.
    campaign = AdCampaignFactory()
    start = datetime.date(2001, 1, 1)
    rows = [
        AdPerformance(
            campaign=campaign,
            shop_id=campaign.shop_id,
            date=start + datetime.timedelta(days=n),
            impressions=n,
            clicks=0,
        )
        for n in range(7_000)
    ]
    fields = [
        f for f in AdPerformance._meta.concrete_fields if not f.primary_key and not getattr(f, "generated", False)
    ]
    assert len(fields) * len(rows) > MAX_PARAMETERS
    assert connection.ops.bulk_batch_size(fields, rows) == MAX_PARAMETERS // len(fields)
    with atomic_scope(service_scope()):
        # Without the cap: "number of parameters must be between 0 and 65535".
        AdPerformance.objects.bulk_create(rows)
        assert AdPerformance.objects.filter(campaign=campaign).count() == 7_000
