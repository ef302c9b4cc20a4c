"""factory_boy factories for CEO briefings."""

from __future__ import annotations

import datetime
import random

import factory
from django.utils import timezone

from tenancy.factories import ScopedFactory, ShopFactory

from .models import BriefingType, CeoBriefing


class CeoBriefingFactory(ScopedFactory[CeoBriefing]):
    class Meta:
        model = CeoBriefing

    shop = factory.SubFactory(ShopFactory)
    briefing_type = BriefingType.WEEKLY
    period_end = factory.Sequence(lambda n: timezone.now().date() - datetime.timedelta(days=7 * n + 1))
    period_start = factory.LazyAttribute(lambda o: o.period_end - datetime.timedelta(days=6))
    executive_summary = factory.Faker("paragraph", nb_sentences=4)
    # The shape generate_briefings writes (advanced/briefings/services/), with made-up figures.
    key_metrics = factory.LazyFunction(
        lambda: {
            "ads": {
                "spend": {
                    "current": f"{random.uniform(500, 5000):.2f}",
                    "change_pct": round(random.uniform(-20, 20), 1),
                },
                "revenue": {
                    "current": f"{random.uniform(2000, 30000):.2f}",
                    "change_pct": round(random.uniform(-20, 30), 1),
                },
                "roas": {"current": round(random.uniform(1.5, 6), 2), "change_pct": round(random.uniform(-15, 15), 1)},
            }
        }
    )
    insights = factory.LazyFunction(
        lambda: [
            {"rank": 1, "title": "Revenue grew faster than spend", "detail": "ROAS improved week over week."},
            {"rank": 2, "title": "Two keywords entered the top 10", "detail": "Organic traffic should follow."},
        ]
    )
    generation_model = "template-v1"
    generation_tokens = None
