"""Every admin form field that points at a shop or a user accepts only what the staff user sees.

Django validates a submitted choice against the form field's queryset, so that queryset is the
server-side check (an autocomplete widget only filters what it offers). The first test walks
every registered admin and every inline, add and change forms, so an admin added later without
the shared base is caught; the others post the forms the way an attacker would.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission
from django.db import models
from django.forms import ModelChoiceField
from django.test import Client, RequestFactory

from advanced.models import KnowledgeDocument
from onboarding.models import FeatureTour, OnboardingProgress
from tenancy.factories import ShopMembershipFactory, UserFactory
from tenancy.models import Shop, User
from tenancy.scope import atomic_scope, back_office_scope, service_scope
from tests.fixtures.tables import TABLES
from tests.fixtures.tenants import SHOP_A, SHOP_B, Tenant

pytestmark = pytest.mark.django_db

INVALID_CHOICE = "Select a valid choice. That choice is not one of the available choices."


def test_every_admin_form_field_to_a_shop_or_user_offers_only_the_staff_users_shops_and_their_members(
    tenant_a: Tenant, tenant_b: Tenant
) -> None:
    for case in TABLES.values():
        case.make(tenant_a)
        case.make(tenant_b)
    staff: User = UserFactory.create(username="alpha-staff", is_staff=True)
    ShopMembershipFactory(user=staff, shop=tenant_a.shop, role="member")
    # Every model permission there is, so every form and inline is built (the grant of every
    # shop aside: this staff user is limited to shop A).
    staff.user_permissions.add(*Permission.objects.exclude(codename="view_all_shops"))
    request = RequestFactory().get("/admin/")
    request.user = staff
    allowed: dict[type[models.Model], set[Any]] = {Shop: {SHOP_A}, User: {tenant_a.owner.pk, staff.pk}}
    checked: dict[tuple[str, str], set[Any]] = {}

    with atomic_scope(back_office_scope(subject=str(staff.pk), shops=(SHOP_A,))):
        for model, model_admin in admin.site._registry.items():
            shown = model_admin.get_queryset(request).first()
            for obj in (None, shown) if shown is not None else (None,):
                forms = [(model._meta.label_lower, model_admin.get_form(request, obj, change=obj is not None))]
                forms += [
                    (f"{model._meta.label_lower}/{type(inline).__name__}", inline.get_formset(request, obj).form)
                    for inline in model_admin.get_inline_instances(request, obj)
                ]
                for label, form_class in forms:
                    for name, field in form_class().fields.items():
                        if isinstance(field, ModelChoiceField) and field.queryset.model in allowed:
                            offered = set(field.queryset.values_list("pk", flat=True))
                            checked[(label, name)] = offered
                            assert offered <= allowed[field.queryset.model], (label, name)

    assert checked[("growth.adcampaign", "shop")] == {SHOP_A}
    assert checked[("tenancy.shopmembership", "shop")] == {SHOP_A}
    # Memberships are given to users the staff user manages: never to themselves.
    assert checked[("tenancy.shopmembership", "user")] == {tenant_a.owner.pk}
    assert checked[("tenancy.shop/MembershipInline", "user")] == {tenant_a.owner.pk}
    assert checked[("tenancy.user/UserMembershipInline", "shop")] == {SHOP_A}
    assert checked[("onboarding.onboardingprogress", "user")] == {tenant_a.owner.pk, staff.pk}
    assert checked[("onboarding.featuretour", "user")] == {tenant_a.owner.pk, staff.pk}
    for label in ("growth.seoaudit", "growth.seoranking", "growth.socialpost", "advanced.experiment"):
        assert checked[(label, "shop")] == {SHOP_A}, label
    assert checked[("advanced.knowledgedocument", "shop")] == {SHOP_A}


def stored(model: type[models.Model], **filters: Any) -> list[Any]:
    with atomic_scope(service_scope()):
        return list(model._default_manager.filter(**filters))


PROGRESS = {
    "step_key": "connect-store",
    "step_order": 0,
    "status": "not_started",
    "attempts": 0,
    "time_spent_seconds": 0,
}
TOUR = {
    "tour_key": "campaigns",
    "tour_name": "Campaigns",
    "steps": '[{"title": "One"}]',
    "status": "pending",
    "current_step": 0,
    "times_shown": 0,
    "interactions": 0,
}
DOCUMENT = {"document_key": "returns", "title": "Returns", "content": "30 days.", "document_type": "policy"}


def limited_client(tenant: Tenant) -> Client:
    staff: User = UserFactory.create(username="alpha-staff", is_staff=True)
    ShopMembershipFactory(user=staff, shop=tenant.shop, role="member")
    staff.user_permissions.add(
        *Permission.objects.filter(
            codename__in=[
                f"{action}_{model}"
                for action in ("add", "view")
                for model in ("onboardingprogress", "featuretour", "knowledgedocument")
            ]
        )
    )
    client = Client(raise_request_exception=False)
    client.force_login(staff)
    return client


@pytest.mark.parametrize(
    ("url", "form", "refused"),
    [
        # Another shop, or a user of another shop: before, the database refused the insert
        # ("new row violates row-level security policy") and the page answered 500.
        ("/admin/onboarding/onboardingprogress/add/", {**PROGRESS, "user": "A", "shop": SHOP_B}, "shop"),
        ("/admin/onboarding/onboardingprogress/add/", {**PROGRESS, "user": "B", "shop": SHOP_A}, "user"),
        ("/admin/onboarding/featuretour/add/", {**TOUR, "user": "B"}, "user"),
        ("/admin/advanced/knowledgedocument/add/", {**DOCUMENT, "shop": SHOP_B}, "shop"),
    ],
    ids=["progress in another shop", "progress of another shop's user", "tour of another shop's user", "document"],
)
def test_admin_add_form_pointing_at_another_shop_or_its_users_is_a_form_error(
    tenant_a: Tenant, tenant_b: Tenant, url: str, form: dict[str, object], refused: str
) -> None:
    client = limited_client(tenant_a)
    users = {"A": tenant_a.owner.pk, "B": tenant_b.owner.pk}
    data = {name: users[str(value)] if name == "user" else value for name, value in form.items()}

    response = client.post(url, data)

    assert response.status_code == 200
    assert dict(response.context["adminform"].form.errors) == {refused: [INVALID_CHOICE]}
    # The tenants start with none of these rows: nothing was written.
    for model in (OnboardingProgress, FeatureTour, KnowledgeDocument):
        assert stored(model) == []


@pytest.mark.parametrize(
    ("url", "form", "model"),
    [
        ("/admin/onboarding/onboardingprogress/add/", {**PROGRESS, "shop": SHOP_A}, OnboardingProgress),
        ("/admin/onboarding/featuretour/add/", TOUR, FeatureTour),
        ("/admin/advanced/knowledgedocument/add/", {**DOCUMENT, "shop": SHOP_A}, KnowledgeDocument),
    ],
    ids=["progress", "tour", "document"],
)
def test_the_same_add_forms_in_the_staff_users_shop_are_saved(
    tenant_a: Tenant, url: str, form: dict[str, object], model: type[models.Model]
) -> None:
    client = limited_client(tenant_a)

    response = client.post(url, {**form, "user": tenant_a.owner.pk})

    assert response.status_code == 302
    assert len(stored(model)) == 1
