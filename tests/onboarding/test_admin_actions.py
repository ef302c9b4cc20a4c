"""The back office's onboarding actions call the same services as the API."""

from __future__ import annotations

import datetime

import pytest
from django.test import Client

from onboarding.factories import FeatureTourFactory, OnboardingProgressFactory
from onboarding.models import FeatureTour, OnboardingProgress
from tenancy.factories import ShopFactory, UserFactory

from .conftest import stored

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff() -> Client:
    client = Client()
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    return client


def test_retry_action_reopens_finished_steps_and_reports_the_others(staff: Client) -> None:
    shop = ShopFactory(domain="alpha.myshopify.com")
    done = OnboardingProgressFactory(shop=shop, step_key="connect-store", completed=True)
    skipped = OnboardingProgressFactory(shop=shop, step_key="invite-team", status="skipped")
    open_step = OnboardingProgressFactory(shop=shop, step_key="connect-social", status="in_progress", attempts=1)
    response = staff.post(
        "/admin/onboarding/onboardingprogress/",
        {"action": "retry_steps", "_selected_action": [done.pk, skipped.pk, open_step.pk]},
        follow=True,
    )
    assert response.status_code == 200
    text = response.content.decode()
    assert "Reopened 2 row(s)." in text
    assert "only a completed or skipped step is retried" in text
    for row in (done, skipped):
        reopened = stored(OnboardingProgress, row.pk)
        assert (reopened.status, reopened.attempts, reopened.completed_at) == ("in_progress", row.attempts + 1, None)
    untouched = stored(OnboardingProgress, open_step.pk)
    assert (untouched.status, untouched.attempts) == ("in_progress", 1)


def test_dismiss_action_closes_open_tours_and_leaves_finished_ones(staff: Client) -> None:
    pending = FeatureTourFactory()
    finished = FeatureTourFactory(status="completed", completed_at=datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC))
    response = staff.post(
        "/admin/onboarding/featuretour/",
        {"action": "dismiss_tours", "_selected_action": [pending.pk, finished.pk]},
        follow=True,
    )
    assert response.status_code == 200
    text = response.content.decode()
    assert "Dismissed 1 row(s)." in text and "is completed" in text
    assert stored(FeatureTour, pending.pk).status == "dismissed"
    assert stored(FeatureTour, finished.pk).status == "completed"
