"""One tenant context per API request: the shop header parsed once, the user and their role read
in one statement, DRF permission classes deciding the role, and the scope built from it."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework import permissions
from rest_framework.test import APIClient

from advanced.briefings.api.permissions import IsBriefingWriterOrReadOnly
from advanced.briefings.api.views import CeoBriefingViewSet
from advanced.knowledge.api.views import KnowledgeDocumentViewSet
from growth.api.views import AdCampaignViewSet
from growth.factories import AdCampaignFactory
from tenancy.api import scoping
from tenancy.api.permissions import IsShopWriterOrReadOnly
from tenancy.api.scoping import ShopHeader, TenantContext
from tenancy.models import MembershipRole
from tenancy.scope import shop_scope
from tests.fixtures.api import assert_error
from tests.fixtures.tenants import SHOP_A, Actor

CAMPAIGNS = "/api/v1/ad-campaigns/"
BRIEFINGS = "/api/v1/ceo-briefings/"

pytestmark = pytest.mark.django_db


def _membership_reads(captured: CaptureQueriesContext) -> list[str]:
    return [query["sql"] for query in captured.captured_queries if '"shop_memberships"' in query["sql"]]


def test_a_token_request_reads_user_and_membership_in_one_statement(owner_a: Actor) -> None:
    AdCampaignFactory(shop=owner_a.shop)
    with CaptureQueriesContext(connection) as captured:
        response = owner_a.client.get(CAMPAIGNS)
    assert response.status_code == 200, response.content
    reads = _membership_reads(captured)
    assert len(reads) == 1
    assert 'FROM "users" u' in reads[0]


def test_a_session_request_reads_the_membership_once(owner_a: Actor) -> None:
    client = APIClient()
    client.force_login(owner_a.user)
    with CaptureQueriesContext(connection) as captured:
        response = client.get(CAMPAIGNS, HTTP_X_SHOP_DOMAIN=SHOP_A.upper())
    assert response.status_code == 200, response.content
    assert len(_membership_reads(captured)) == 1


def test_the_header_is_parsed_once_per_request(owner_a: Actor, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    parse = ShopHeader.of.__func__

    def counting(cls: type[ShopHeader], request: object) -> ShopHeader:
        calls.append("parsed")
        header: ShopHeader = parse(cls, request)
        return header

    monkeypatch.setattr(ShopHeader, "of", classmethod(counting))
    assert owner_a.client.get(CAMPAIGNS).status_code == 200
    assert calls == ["parsed"]


def test_the_context_builds_the_scope() -> None:
    context = TenantContext(shop=SHOP_A, subject="42", member_role=MembershipRole.CEO)
    assert context.scope() == shop_scope(shop=SHOP_A, subject="42", member_role="ceo")
    assert context.required_shop == SHOP_A
    mine = TenantContext(shop=None, subject="42", member_role=None)
    assert mine.scope() == shop_scope(shop="", subject="42", member_role=None)
    with pytest.raises(RuntimeError):
        _ = mine.required_shop


def test_role_checks_are_drf_permission_classes() -> None:
    for view in (AdCampaignViewSet, KnowledgeDocumentViewSet, CeoBriefingViewSet):
        assert all(issubclass(cls, permissions.BasePermission) for cls in view.tenant_permission_classes)
    assert AdCampaignViewSet.tenant_permission_classes == (IsShopWriterOrReadOnly,)
    assert CeoBriefingViewSet.tenant_permission_classes == (IsShopWriterOrReadOnly, IsBriefingWriterOrReadOnly)
    assert KnowledgeDocumentViewSet.read_actions == ("search",)


def test_a_viewer_write_is_refused_by_the_permission_class_and_nothing_is_written(viewer_a: Actor) -> None:
    body = assert_error(
        viewer_a.client.post(CAMPAIGNS, {"platform": "google_ads", "campaign_name": "x"}, format="json"),
        403,
        code="permission_denied",
    )
    assert body["detail"] == IsShopWriterOrReadOnly.message


def test_a_member_write_of_a_briefing_is_refused_before_any_lookup(member_a: Actor) -> None:
    with CaptureQueriesContext(connection) as captured:
        response = member_a.client.post(BRIEFINGS, {}, format="json")
    body = assert_error(response, 403, code="permission_denied")
    assert body["detail"] == IsBriefingWriterOrReadOnly.message
    assert not any('"ceo_briefings"' in query["sql"] for query in captured.captured_queries)


def test_the_membership_is_no_longer_stashed_on_the_user(owner_a: Actor) -> None:
    assert not hasattr(scoping, "_MEMBERSHIP_CACHE")
    found = scoping.active_user(owner_a.user.pk, shop=SHOP_A)
    assert found is not None
    user, role = found
    assert (user.pk, role) == (owner_a.user.pk, "owner")
    assert not any(name.startswith("_requested") for name in vars(user))
