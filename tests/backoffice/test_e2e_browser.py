"""End to end in a real browser: a staff member signs in, reviews a briefing and reads an experiment.

Playwright drives Debian's Chromium (`make browser` installs it; `playwright install` is never
run, no browser is downloaded) against pytest-django's live server, which serves the admin
with the project's middleware: every page runs in the back_office scope. Screenshots of each
step are saved in test-artifacts/ (git-ignored) for a person to look at.

Skipped, with the reason, where Chromium or the playwright package is missing.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.urls import reverse

from advanced.briefings.factories import CeoBriefingFactory
from advanced.experiments.factories import ExperimentFactory, ExperimentResultFactory
from advanced.models import CeoBriefing
from tenancy.factories import ShopFactory, UserFactory
from tenancy.scope import atomic_scope, service_scope

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(settings.BASE_DIR) / "test-artifacts"
PASSWORD = "password-123"  # UserFactory's

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason=f"{CHROMIUM} is missing: run `make browser` (as root on Debian) to install Debian's chromium",
    ),
    pytest.mark.skipif(
        importlib.util.find_spec("playwright") is None,
        reason="the playwright package is missing: make install",
    ),
]


def test_staff_reviews_a_briefing_and_reads_an_experiment_chart(live_server: Any) -> None:
    from playwright.sync_api import expect, sync_playwright

    staff = UserFactory.create(username="e2e-staff", is_staff=True, is_superuser=True)
    shop = ShopFactory.create(domain="e2e-outfitters.myshopify.com")
    briefing = CeoBriefingFactory.create(
        shop=shop,
        executive_summary="Revenue grew 12% while ad spend held flat.",
        insights=[{"rank": 1, "title": "Revenue grew faster than spend", "detail": "ROAS improved."}],
    )
    experiment = ExperimentFactory.create(shop=shop, experiment_name="Free shipping banner")
    for key, participants, conversions in (("control", 2400, 96), ("treatment", 2380, 131)):
        ExperimentResultFactory.create(
            experiment=experiment, variant_key=key, participants=participants, conversions=conversions
        )
    ARTIFACTS.mkdir(exist_ok=True)
    queue = f"{live_server.url}{reverse('admin:advanced_ceobriefing_changelist')}"

    # Django's ORM refuses to run in a thread with a running event loop, which the sync
    # Playwright API keeps: the database is read before the browser starts and after it ends.
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1366, "height": 900})
            page.set_default_timeout(20_000)

            page.goto(
                f"{live_server.url}{reverse('admin:login')}?next={reverse('admin:advanced_ceobriefing_changelist')}"
            )
            page.fill("#id_username", staff.username)
            page.fill("#id_password", PASSWORD)
            page.click("input[type=submit]")
            page.wait_for_url(f"{queue}*")
            expect(page.locator("#review-queue-link")).to_contain_text("1 unreviewed")
            page.screenshot(path=str(ARTIFACTS / "e2e-01-briefing-queue.png"), full_page=True)

            page.click(f"#result_list a[href*='/ceobriefing/{briefing.pk}/change/']")
            expect(page.locator("#briefing-summary")).to_contain_text("Revenue grew 12%")
            expect(page.locator("table.briefing-metrics")).to_be_visible()
            expect(page.locator("ol.briefing-insights li")).to_have_count(1)
            page.screenshot(path=str(ARTIFACTS / "e2e-02-briefing-report.png"), full_page=True)

            page.select_option("#id_rating", "4")
            page.fill("#id_feedback_notes", "Lead with revenue; good length.")
            page.click("input[name=_save]")
            expect(page.locator("ul.messagelist li.success")).to_contain_text("was changed successfully")
            page.screenshot(path=str(ARTIFACTS / "e2e-03-briefing-saved.png"), full_page=True)

            page.click("#rating-statistics-link")
            model_row = page.locator("table.rating-statistics tr.model-row")
            expect(model_row).to_have_count(1)
            expect(model_row.locator("td.average")).to_have_text("4.00")
            page.screenshot(path=str(ARTIFACTS / "e2e-03b-rating-statistics.png"), full_page=True)

            page.goto(f"{live_server.url}{reverse('admin:advanced_experiment_change', args=[experiment.pk])}")
            # The conversion-rate chart (the review's lift chart is another interval chart).
            chart = page.locator("svg.interval-chart", has=page.locator("title", has_text="Conversion rate"))
            expect(chart).to_be_visible()
            expect(chart.locator("line.interval")).to_have_count(2)
            expect(chart.locator("circle.estimate")).to_have_count(2)
            box = chart.bounding_box()
            assert box is not None and box["width"] > 300 and box["height"] > 80
            chart.scroll_into_view_if_needed()
            page.screenshot(path=str(ARTIFACTS / "e2e-04-experiment-chart.png"), full_page=True)
            chart.screenshot(path=str(ARTIFACTS / "e2e-05-interval-chart.png"))
        finally:
            browser.close()

    with atomic_scope(service_scope()):
        reviewed = CeoBriefing.objects.get(pk=briefing.pk)
    assert (reviewed.rating, reviewed.feedback_notes) == (4, "Lead with revenue; good length.")
    assert reviewed.reviewed_by_id == staff.pk and reviewed.reviewed_at is not None
    for name in ("e2e-01-briefing-queue", "e2e-02-briefing-report", "e2e-04-experiment-chart"):
        assert (ARTIFACTS / f"{name}.png").stat().st_size > 10_000
