"""shop/redact leaves nothing of the shop behind anywhere in the database:
not in its tables, and not in the admin log, job runs or webhook records either.

A marker is planted in every text of the shop that can hold one, through the paths that really
write it (factories for rows, the admin's change form for the admin log, the webhook endpoint
for deliveries); after the erasure, every column of every table the catalog lists is searched
for the marker and for the shop's domain. What may remain is listed below with its reason, and
is what docs/security.md ("Erasure") says remains.
"""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from django.contrib.admin.models import LogEntry
from django.db import connection
from django.db.models.functions import Now
from django.test import Client
from django.utils import timezone

from advanced.briefings.factories import CeoBriefingFactory
from advanced.experiments.factories import ExperimentFactory
from advanced.knowledge.factories import KnowledgeDocumentFactory
from growth.factories import AdCampaignFactory, SeoRankingFactory, SocialPostFactory
from growth.models import AdCampaign
from jobs.models import JobRun, JobStatus
from shopify.erasure import ERASED_ARGUMENT, ERASED_LINE, names_shop
from shopify.models import DeliveryStatus, ErasureStatus, ShopErasure, WebhookDelivery
from tenancy.factories import UserFactory
from tenancy.models import ShopMembership
from tenancy.scope import atomic_scope, service_scope
from tests.fixtures.tenants import SHOP_A, SHOP_B, Tenant

from .conftest import post_webhook, shop_rows

pytestmark = pytest.mark.django_db

MARKER = "zq7-erasure-marker"

# (table, column) that may still hold the erased shop's domain, and why. Nothing may hold the
# marker: it was only ever in the shop's data.
DOMAIN_REMAINS = {
    ("shops", "shop_domain"): "the shop's row is kept, inactive: the key of the records below",
    ("shops", "name"): "replaced by the domain at the erasure (the name was the shop's data)",
    ("shopify_shop_erasures", "shop_domain"): "the erasure record: the proof that and when the shop was erased",
    ("shopify_webhook_deliveries", "shop_domain"): (
        "the shop/redact delivery: the request for the erasure, and the key that makes a duplicate a replay"
    ),
    # Not the shop's data: the fixture names its second user (username and e-mail) after the
    # shop. User accounts are people and are kept (they may belong to other shops); their
    # memberships of the shop are gone.
    ("users", "username"): "the fixture's user 'second-<domain>'",
    ("users", "email"): "the fixture's user 'second-<domain>@example.com'",
}


def text_columns() -> list[tuple[str, str, str, bool]]:
    """(schema, table, column, row level security?) of every column that can hold text, in every
    table and materialized view of every schema but PostgreSQL's own: strings, json/jsonb and
    other user-defined types, and arrays. Partitioned tables are read through their parents."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT n.nspname, c.relname, a.attname, c.relrowsecurity FROM pg_class c
            JOIN pg_namespace n ON n.oid = c.relnamespace
            JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
            JOIN pg_type t ON t.oid = a.atttypid
            WHERE c.relkind IN ('r', 'p', 'm') AND NOT c.relispartition
              AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%%'
              AND t.typcategory IN ('S', 'U', 'A')
            ORDER BY 1, 2, 3
            """
        )
        return [(str(s), str(t), str(c), bool(rls)) for s, t, c, rls in cursor.fetchall()]


def holding(needle: str) -> dict[tuple[str, str], list[str]]:
    """{(table, column): values} of every text column of the database that contains `needle`
    (case-insensitive). Tables with row level security are read as service_role, which their
    policies let see every row; the others as the owner of the tables (service_role has no
    privilege on some of them, e.g. the rate limiter's counters)."""
    found: dict[tuple[str, str], list[str]] = {}
    columns = text_columns()
    assert len(columns) > 100, columns  # the walk really covers the schema

    def search(schema: str, table: str, column: str) -> None:
        with connection.cursor() as cursor:
            cursor.execute(
                f'SELECT left("{column}"::text, 300) FROM "{schema}"."{table}" WHERE "{column}"::text ILIKE %s',
                [f"%{needle}%"],
            )
            values = [str(value) for (value,) in cursor.fetchall()]
        if values:
            found[(table, column)] = values

    with atomic_scope(service_scope()):
        for schema, table, column, rls in columns:
            if rls:
                search(schema, table, column)
    for schema, table, column, rls in columns:
        if not rls:
            search(schema, table, column)
    return found


def admin_change(client: Client, url: str, **changes: Any) -> Any:
    """POST the admin change form at `url` as rendered, with `changes`: a real change through
    the admin (its form, its formsets, its log entry)."""
    page = client.get(url)
    assert page.status_code == 200
    data: dict[str, Any] = {}

    def add(form: Any) -> None:
        for name in form.fields:
            value = form[name].value()
            if value is None or value is False:
                continue
            data[form.add_prefix(name)] = (
                "on" if value is True else [str(v) for v in value] if isinstance(value, list | tuple) else str(value)
            )

    add(page.context["adminform"].form)
    for inline in page.context["inline_admin_formsets"]:
        formset = inline.formset
        add(formset.management_form)
        for form in formset.forms:
            add(form)
    data.update(changes)
    response = client.post(url, data)
    assert response.status_code == 302, response.content.decode()[:2000]
    return response


def plant(tenant_a: Tenant, tenant_b: Tenant) -> dict[str, Any]:
    """The marker in every kind of text the shop owns, and the shop named in job runs, the
    admin log and webhook records; the same for shop B, which must keep all of it."""
    campaign = AdCampaignFactory(shop=tenant_a.shop, campaign_name=f"{MARKER} campaign", platform_campaign_id=MARKER)
    campaign_b = AdCampaignFactory(shop=tenant_b.shop, campaign_name="B's own campaign")
    KnowledgeDocumentFactory(
        shop=tenant_a.shop,
        document_key=f"{MARKER}-doc",
        title=f"{MARKER} returns policy",
        content=f"Returns within 30 days. {MARKER}",
        tags=[MARKER],
    )
    SocialPostFactory(shop=tenant_a.shop, caption=f"New season {MARKER}", platform_post_id=MARKER)
    SeoRankingFactory(shop=tenant_a.shop, keyword=f"{MARKER} shoes")
    CeoBriefingFactory(
        shop=tenant_a.shop,
        executive_summary=f"Revenue grew. {MARKER}",
        key_metrics={"note": MARKER},
        insights=[{"title": MARKER, "detail": MARKER}],
    )
    ExperimentFactory(shop=tenant_a.shop, experiment_name=f"{MARKER} test", description=MARKER)

    # Staff change the shop's rows through the admin: the log keeps each row's repr.
    staff = UserFactory(username="erasure-staff", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(staff)
    admin_change(client, f"/admin/growth/adcampaign/{campaign.pk}/change/", campaign_name=f"{MARKER} campaign renamed")
    admin_change(client, f"/admin/growth/adcampaign/{campaign_b.pk}/change/", campaign_name="B renamed")
    admin_change(client, f"/admin/tenancy/shop/{SHOP_A}/change/", name=f"{MARKER} Outfitters")
    # A membership deleted through the admin: its row is gone, its entry names the shop.
    membership = ShopMembership.objects.get(shop_id=SHOP_A, user__username=f"second-{SHOP_A}")
    assert client.post(f"/admin/tenancy/shopmembership/{membership.pk}/delete/", {"post": "yes"}).status_code == 302

    # A job run that reported on both shops, with figures, and one run for the shop alone.
    JobRun.objects.create(
        job="briefings-weekly",
        arguments=["--type", "weekly"],
        status=JobStatus.SUCCEEDED,
        finished_at=Now(),
        output=(
            f"{SHOP_A}: created (template, 4 insights) revenue 48,210.00 {MARKER}\n"
            f"{SHOP_B}: created (template, 3 insights)"
        ),
    )
    JobRun.objects.create(
        job="reembed",
        arguments=["--shop", SHOP_A],
        shop=SHOP_A,
        status=JobStatus.FAILED,
        finished_at=Now(),
        error=f"Traceback\nValueError: document {MARKER} of {SHOP_A} has no text",
    )

    # Webhooks of the shop before its redaction; the payloads carry the marker.
    web = Client()
    assert post_webhook(web, "app/uninstalled", SHOP_A, {"domain": SHOP_A, "name": MARKER}).status_code == 200
    assert post_webhook(web, "orders/create", SHOP_A, {"note": MARKER}).status_code == 200
    customer = {"shop_domain": SHOP_A, "customer": {"email": f"{MARKER}@example.com"}, "orders_to_redact": [1]}
    assert post_webhook(web, "customers/redact", SHOP_A, customer).status_code == 200
    assert post_webhook(web, "orders/create", SHOP_B, {"note": "B"}, webhook_id="wh-b").status_code == 200
    return {"campaign_b": campaign_b}


def test_after_shop_redact_no_table_holds_the_shops_marker_or_domain_but_the_documented_records(
    filled: tuple[Tenant, Tenant],
) -> None:
    tenant_a, tenant_b = filled
    planted = plant(tenant_a, tenant_b)
    # Each place the test expects to be cleaned really holds the shop before the erasure.
    before = holding(MARKER)
    for place in [
        ("ad_campaigns", "campaign_name"),
        ("knowledge_base", "title"),
        ("knowledge_base", "content"),
        ("knowledge_base", "tags"),
        ("social_posts", "caption"),
        ("seo_rankings", "keyword"),
        ("ceo_briefings", "executive_summary"),
        ("ceo_briefings", "insights"),
        ("experiments", "experiment_name"),
        ("django_admin_log", "object_repr"),
        ("job_runs", "output"),
        ("job_runs", "error"),
    ]:
        assert place in before, place
    assert ("job_runs", "arguments") in holding(SHOP_A) and ("job_runs", "shop") in holding(SHOP_A)
    assert any(f"@ {SHOP_A}" in repr_ for repr_ in holding(SHOP_A)[("django_admin_log", "object_repr")])
    b_before = shop_rows(SHOP_B)

    response = post_webhook(Client(), "shop/redact", SHOP_A, {"shop_id": 1, "shop_domain": SHOP_A})

    assert response.status_code == 200, response.content
    assert response.json()["status"] == "processed"
    assert holding(MARKER) == {}
    remains = holding(SHOP_A)
    assert set(remains) == set(DOMAIN_REMAINS), {k: v for k, v in remains.items() if k not in DOMAIN_REMAINS}
    assert remains[("shops", "name")] == [SHOP_A]
    assert remains[("users", "username")] == [f"second-{SHOP_A}"]
    with atomic_scope(service_scope()):
        kept = list(WebhookDelivery.objects.filter(shop_domain=SHOP_A).values_list("topic", "status"))
        erasure = ShopErasure.objects.get(shop_domain=SHOP_A)
    assert kept == [("shop/redact", DeliveryStatus.PROCESSED)]
    assert erasure.status == ErasureStatus.COMPLETED
    # The campaign's change, the shop's, and the deleted membership's.
    assert erasure.rows_deleted["django_admin_log"] == 3
    assert erasure.rows_deleted["shopify_webhook_deliveries"] == 3

    # Shop B keeps its rows, its deliveries, its admin log entry and its line of the job run.
    assert shop_rows(SHOP_B) == b_before
    with atomic_scope(service_scope()):
        assert WebhookDelivery.objects.filter(shop_domain=SHOP_B, webhook_id="wh-b").exists()
        assert AdCampaign.objects.filter(pk=planted["campaign_b"].pk).exists()
    assert list(LogEntry.objects.values_list("object_repr", flat=True)) == ["B renamed"]
    briefing_run = JobRun.objects.get(job="briefings-weekly")
    assert briefing_run.output == f"{ERASED_LINE}\n{SHOP_B}: created (template, 3 insights)"
    assert briefing_run.arguments == ["--type", "weekly"]
    reembed_run = JobRun.objects.get(job="reembed")
    assert reembed_run.arguments == ["--shop", ERASED_ARGUMENT] and reembed_run.shop == ""
    assert reembed_run.error == f"Traceback\n{ERASED_LINE}"
    assert (briefing_run.status, reembed_run.status) == (JobStatus.SUCCEEDED, JobStatus.FAILED)


def test_a_domain_is_named_only_as_a_whole_host_name() -> None:
    # Shop domains are suffixes of one another; erasing one must not touch another's lines.
    assert names_shop(f"{SHOP_A}: created", SHOP_A)
    assert names_shop(f"--shop={SHOP_A.upper()}.", SHOP_A)
    assert names_shop(f"https://{SHOP_A}/admin", SHOP_A)
    assert not names_shop(f"beta-{SHOP_A}: created", SHOP_A)
    assert not names_shop(f"x.{SHOP_A}", SHOP_A)
    assert not names_shop(f"{SHOP_A}.evil.com", SHOP_A)
    assert not names_shop(f"{SHOP_A}-2", SHOP_A)


def test_an_erasure_leaves_a_delivery_being_processed_to_its_request(tenant_a: Tenant) -> None:
    from shopify.erasure import shop_erasure_run

    with atomic_scope(service_scope()):
        WebhookDelivery.objects.create(
            webhook_id="wh-running",
            topic="app/uninstalled",
            shop_domain=SHOP_A,
            payload_sha256="0" * 64,
            payload_bytes=2,
            claimed_at=timezone.now() - datetime.timedelta(seconds=1),
        )
    shop_erasure_run(shop_domain=SHOP_A, reason="test")
    with atomic_scope(service_scope()):
        assert list(WebhookDelivery.objects.values_list("webhook_id", "status")) == [("wh-running", "received")]


def test_the_admin_log_entry_of_a_row_staff_deleted_before_the_erasure_goes_too(tenant_a: Tenant) -> None:
    campaign = AdCampaignFactory(shop=tenant_a.shop, campaign_name=f"{MARKER} deleted campaign")
    staff = UserFactory(username="erasure-staff", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(staff)
    assert client.post(f"/admin/growth/adcampaign/{campaign.pk}/delete/", {"post": "yes"}).status_code == 302
    assert LogEntry.objects.filter(object_repr__contains=MARKER).exists()
    post_webhook(Client(), "shop/redact", SHOP_A, {"shop_domain": SHOP_A})
    assert not LogEntry.objects.filter(object_repr__contains=MARKER).exists()
