"""Shop-limited staff cannot widen their own access, and "every shop" is an explicit grant.

The attacks of an outside red-team run against the back office, replayed through the admin's
own forms: a staff user of one shop granting themselves another, deleting their last membership
to see every shop, reading the whole user directory, giving themselves superuser status. Each
test checks the exact status code and what the database holds afterwards.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Group, Permission
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from growth.factories import AdCampaignFactory
from growth.models import AdCampaign
from tenancy.factories import ShopFactory, ShopMembershipFactory, UserFactory
from tenancy.models import ShopMembership, User
from tenancy.scope import atomic_scope, service_scope
from tests.fixtures.tenants import SHOP_A, SHOP_B, Tenant

pytestmark = pytest.mark.django_db

MEMBERSHIPS = "/admin/tenancy/shopmembership/"
USERS = "/admin/tenancy/user/"
CAMPAIGNS = "/admin/growth/adcampaign/"
MEMBERSHIP_PERMS = ("view_shopmembership", "add_shopmembership", "change_shopmembership", "delete_shopmembership")
USER_PERMS = ("view_user", "add_user", "change_user", "delete_user")


def staff(username: str, *shops: str, perms: tuple[str, ...] = (), role: str = "member") -> tuple[User, Client]:
    """A staff user (never a superuser) who is a member of `shops`, with model permissions."""
    user = UserFactory(username=username, is_staff=True)
    for shop in shops:
        ShopMembershipFactory(user=user, shop=ShopFactory(domain=shop), role=role)
    user.user_permissions.add(*Permission.objects.filter(codename__in=perms))
    client = Client(raise_request_exception=False)
    client.force_login(user)
    return user, client


def memberships_of(user: User) -> list[tuple[str, str]]:
    return sorted(ShopMembership.objects.filter(user=user).values_list("shop_id", "role"))


def shown_campaigns(client: Client) -> list[str]:
    response = client.get(CAMPAIGNS)
    assert response.status_code == 200
    return sorted(c.shop_id for c in response.context["cl"].result_list)


def form_errors(response: Any) -> dict[str, list[str]]:
    return {name: list(errors) for name, errors in response.context["adminform"].form.errors.items()}


def missing_object_redirect(response: Any) -> bool:
    """Django's answer to a change page of a row the staff user cannot see: back to the
    admin index with "... doesn't exist" (the same answer as for a row that does not exist)."""
    messages = [str(m) for m in get_messages(response.wsgi_request)]
    return (
        response.status_code == 302
        and response["Location"] == reverse("admin:index")
        and any("doesn\u2019t exist" in m for m in messages)
    )


@pytest.fixture
def campaigns(tenant_a: Tenant, tenant_b: Tenant) -> dict[str, int]:
    return {
        SHOP_A: AdCampaignFactory(shop=tenant_a.shop, campaign_name="Alpha brand").pk,
        SHOP_B: AdCampaignFactory(shop=tenant_b.shop, campaign_name="Bravo brand").pk,
    }


def membership_form(user: User, shop: str, role: str = "owner") -> dict[str, object]:
    return {"user": user.pk, "shop": shop, "role": role}


# --- 1. a shop-limited staff user cannot change their own access ----------------------------


def test_staff_member_of_one_shop_cannot_grant_themselves_another_shop(campaigns: dict[str, int]) -> None:
    me, client = staff("alpha-staff", SHOP_A, perms=(*MEMBERSHIP_PERMS, "view_adcampaign"))

    response = client.post(f"{MEMBERSHIPS}add/", membership_form(me, SHOP_B))

    assert response.status_code == 200
    errors = form_errors(response)
    assert set(errors) == {"user", "shop"}
    assert errors["shop"] == ["Select a valid choice. That choice is not one of the available choices."]
    assert memberships_of(me) == [(SHOP_A, "member")]
    assert shown_campaigns(client) == [SHOP_A]


def test_staff_member_cannot_raise_their_own_role_in_their_shop(tenant_a: Tenant) -> None:
    me, client = staff("alpha-staff", SHOP_A, perms=MEMBERSHIP_PERMS)
    (own,) = ShopMembership.objects.filter(user=me)

    added = client.post(f"{MEMBERSHIPS}add/", membership_form(me, SHOP_A))
    changed = client.post(f"{MEMBERSHIPS}{own.pk}/change/", membership_form(me, SHOP_A))
    page = client.get(f"{MEMBERSHIPS}{own.pk}/change/")

    assert added.status_code == 200
    assert form_errors(added)["user"] == ["Select a valid choice. That choice is not one of the available choices."]
    assert changed.status_code == 403
    # Their own row is shown read-only: no form to submit.
    assert page.status_code == 200 and page.context["has_change_permission"] is False
    assert memberships_of(me) == [(SHOP_A, "member")]


def test_staff_member_cannot_delete_their_own_membership(tenant_a: Tenant) -> None:
    me, client = staff("alpha-staff", SHOP_A, perms=MEMBERSHIP_PERMS)
    (own,) = ShopMembership.objects.filter(user=me)

    single = client.post(f"{MEMBERSHIPS}{own.pk}/delete/", {"post": "yes"})
    bulk = client.post(MEMBERSHIPS, {"action": "delete_selected", "_selected_action": [own.pk], "post": "yes"})

    assert single.status_code == 403
    assert bulk.status_code == 403
    assert memberships_of(me) == [(SHOP_A, "member")]


def test_staff_member_cannot_grant_or_change_another_staff_users_access(tenant_a: Tenant) -> None:
    _, client = staff("alpha-staff", SHOP_A, perms=MEMBERSHIP_PERMS)
    peer, _ = staff("alpha-peer", SHOP_A)
    (peer_row,) = ShopMembership.objects.filter(user=peer)
    ShopFactory(domain="alpha-two.myshopify.com")

    added = client.post(f"{MEMBERSHIPS}add/", membership_form(peer, SHOP_A))
    changed = client.post(f"{MEMBERSHIPS}{peer_row.pk}/change/", membership_form(peer, SHOP_A))
    deleted = client.post(f"{MEMBERSHIPS}{peer_row.pk}/delete/", {"post": "yes"})

    assert added.status_code == 200 and "user" in form_errors(added)
    assert changed.status_code == deleted.status_code == 403
    assert memberships_of(peer) == [(SHOP_A, "member")]


def test_staff_member_cannot_give_a_user_of_another_shop_a_membership(tenant_a: Tenant, tenant_b: Tenant) -> None:
    _, client = staff("alpha-staff", SHOP_A, perms=MEMBERSHIP_PERMS)

    response = client.post(f"{MEMBERSHIPS}add/", membership_form(tenant_b.owner, SHOP_A))

    assert response.status_code == 200
    assert form_errors(response) == {
        "user": ["Select a valid choice. That choice is not one of the available choices."]
    }
    assert memberships_of(tenant_b.owner) == [(SHOP_B, "owner")]


def test_staff_member_manages_memberships_of_shop_users_within_their_shops(tenant_a: Tenant) -> None:
    """The positive case: the rules refuse escalation, not the work."""
    _, client = staff("alpha-staff", SHOP_A, "alpha-two.myshopify.com", perms=MEMBERSHIP_PERMS)

    response = client.post(f"{MEMBERSHIPS}add/", membership_form(tenant_a.owner, "alpha-two.myshopify.com", "ceo"))

    assert response.status_code == 302
    assert response["Location"] == MEMBERSHIPS
    assert memberships_of(tenant_a.owner) == [("alpha-two.myshopify.com", "ceo"), (SHOP_A, "owner")]


def inline_form(prefix: str, rows: list[dict[str, object]], initial: int) -> dict[str, object]:
    data: dict[str, object] = {
        f"{prefix}-TOTAL_FORMS": len(rows),
        f"{prefix}-INITIAL_FORMS": initial,
        f"{prefix}-MIN_NUM_FORMS": 0,
        f"{prefix}-MAX_NUM_FORMS": 1000,
    }
    for i, row in enumerate(rows):
        data.update({f"{prefix}-{i}-{name}": value for name, value in row.items()})
    return data


def test_shop_page_inline_cannot_add_change_or_delete_the_staff_users_own_membership(tenant_a: Tenant) -> None:
    me, client = staff("alpha-staff", SHOP_A, perms=(*MEMBERSHIP_PERMS, "view_shop", "change_shop"))
    (own,) = ShopMembership.objects.filter(user=me)
    page = client.get(f"/admin/tenancy/shop/{SHOP_A}/change/")
    shop = {"name": tenant_a.shop.name, "is_active": "on"}

    delete_own = client.post(
        f"/admin/tenancy/shop/{SHOP_A}/change/",
        {**shop, **inline_form("memberships", [{"id": own.pk, "user": me.pk, "role": "owner", "DELETE": "on"}], 1)},
    )
    add_self = client.post(
        f"/admin/tenancy/shop/{SHOP_A}/change/",
        {**shop, **inline_form("memberships", [{"user": me.pk, "role": "owner"}], 0)},
    )

    # The inline lists the shop's users (its owner), not the staff user's own row.
    (formset,) = page.context["inline_admin_formsets"]
    assert [form.instance.user_id for form in formset.formset.forms] == [tenant_a.owner.pk]
    # A row the inline does not list is not found: its DELETE deletes nothing (Django skips
    # forms marked for deletion whose row is unknown) and the rest of the page saves.
    assert delete_own.status_code == 302
    assert add_self.status_code == 200
    assert add_self.context["inline_admin_formsets"][0].formset.errors == [
        {"user": ["Select a valid choice. That choice is not one of the available choices."]}
    ]
    assert memberships_of(me) == [(SHOP_A, "member")]


def test_user_page_inline_cannot_add_a_shop_the_staff_user_does_not_see(tenant_a: Tenant, tenant_b: Tenant) -> None:
    _, client = staff("alpha-staff", SHOP_A, perms=(*MEMBERSHIP_PERMS, "view_user", "change_user"))
    owner = tenant_a.owner
    (row,) = ShopMembership.objects.filter(user=owner)

    response = client.post(
        f"{USERS}{owner.pk}/change/",
        {
            "username": owner.username,
            "email": owner.email,
            "is_active": "on",
            **inline_form(
                "memberships",
                [{"id": row.pk, "shop": SHOP_A, "role": "owner"}, {"shop": SHOP_B, "role": "owner"}],
                1,
            ),
        },
    )

    assert response.status_code == 200
    (formset,) = response.context["inline_admin_formsets"]
    assert formset.formset.errors[1] == {
        "shop": ["Select a valid choice. That choice is not one of the available choices."]
    }
    assert memberships_of(owner) == [(SHOP_A, "owner")]


# --- 2. "every shop" is an explicit grant -----------------------------------------------------


def test_staff_without_memberships_or_grant_sees_no_shop(campaigns: dict[str, int]) -> None:
    _, client = staff("nobody-staff", perms=("view_adcampaign", "view_shop", "view_shopmembership", "view_user"))

    shops = client.get("/admin/tenancy/shop/")
    members = client.get(MEMBERSHIPS)
    users = client.get(USERS)
    autocomplete = client.get(
        reverse("admin:autocomplete"),
        {"app_label": "growth", "model_name": "adcampaign", "field_name": "shop", "term": ""},
    )

    assert shown_campaigns(client) == []
    assert shops.status_code == members.status_code == users.status_code == autocomplete.status_code == 200
    assert list(shops.context["cl"].result_list) == []
    assert list(members.context["cl"].result_list) == []
    assert list(users.context["cl"].result_list) == []
    assert autocomplete.json()["results"] == []
    assert missing_object_redirect(client.get(f"{CAMPAIGNS}{campaigns[SHOP_A]}/change/"))


def test_staff_whose_last_membership_is_removed_sees_nothing(campaigns: dict[str, int]) -> None:
    me, client = staff("alpha-staff", SHOP_A, perms=("view_adcampaign",))
    assert shown_campaigns(client) == [SHOP_A]

    ShopMembership.objects.filter(user=me).delete()

    assert shown_campaigns(client) == []


def test_view_all_shops_permission_grants_every_shop(campaigns: dict[str, int]) -> None:
    # A member of shop A with the grant: the grant, not the memberships, decides.
    _, client = staff("auditor", SHOP_A, perms=("view_adcampaign", "view_all_shops"))

    assert shown_campaigns(client) == [SHOP_A, SHOP_B]


def test_view_all_shops_permission_through_a_group_grants_every_shop(campaigns: dict[str, int]) -> None:
    me, client = staff("auditor", SHOP_A, perms=("view_adcampaign",))
    assert shown_campaigns(client) == [SHOP_A]
    auditors = Group.objects.create(name="auditors")
    auditors.permissions.add(Permission.objects.get(codename="view_all_shops"))
    me.groups.add(auditors)

    assert shown_campaigns(client) == [SHOP_A, SHOP_B]


def test_superuser_sees_every_shop_without_memberships(campaigns: dict[str, int]) -> None:
    client = Client()
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))

    assert shown_campaigns(client) == [SHOP_A, SHOP_B]


# --- 3. the user directory and privilege fields -----------------------------------------------


def test_user_directory_of_shop_limited_staff_lists_only_members_of_their_shops(
    tenant_a: Tenant, tenant_b: Tenant
) -> None:
    _, client = staff("alpha-staff", SHOP_A, perms=("view_user", "view_onboardingprogress", "add_onboardingprogress"))

    listing = client.get(USERS)
    search = client.get(USERS, {"q": "bravo"})
    autocomplete = client.get(
        reverse("admin:autocomplete"),
        {"app_label": "onboarding", "model_name": "onboardingprogress", "field_name": "user", "term": ""},
    )

    assert listing.status_code == search.status_code == autocomplete.status_code == 200
    assert sorted(u.username for u in listing.context["cl"].result_list) == ["alpha-owner", "alpha-staff"]
    assert list(search.context["cl"].result_list) == []
    assert sorted(item["text"] for item in autocomplete.json()["results"]) == ["alpha-owner", "alpha-staff"]
    assert "bravo-owner@example.com" not in listing.content.decode()
    assert missing_object_redirect(client.get(f"{USERS}{tenant_b.owner.pk}/change/"))


def test_user_form_of_shop_limited_staff_has_no_privilege_fields_and_ignores_them(tenant_a: Tenant) -> None:
    _, client = staff("alpha-staff", SHOP_A, perms=USER_PERMS)
    owner = tenant_a.owner
    everything = Permission.objects.get(codename="view_all_shops")
    group = Group.objects.create(name="admins")

    page = client.get(f"{USERS}{owner.pk}/change/")
    listing = client.get(USERS).content.decode()
    response = client.post(
        f"{USERS}{owner.pk}/change/",
        {
            "username": owner.username,
            "email": "new@example.com",
            "is_active": "on",
            "is_staff": "on",
            "is_superuser": "on",
            "groups": [group.pk],
            "user_permissions": [everything.pk],
            **inline_form("memberships", [], 0),
        },
    )

    assert page.status_code == 200
    fields = set(page.context["adminform"].form.fields)
    assert fields.isdisjoint({"is_staff", "is_superuser", "groups", "user_permissions"})
    assert "is_active" in fields
    assert "column-is_superuser" not in listing and "is_staff__exact" not in listing
    # Nor filtered by them by hand: that would tell who among the members holds privileges.
    for lookup in ("is_superuser__exact", "is_staff", "groups__name", "user_permissions__codename"):
        assert client.get(USERS, {lookup: "1"}).status_code == 400, lookup
    assert response.status_code == 302
    owner.refresh_from_db()
    assert owner.email == "new@example.com"
    assert (owner.is_staff, owner.is_superuser) == (False, False)
    assert list(owner.groups.all()) == [] and list(owner.user_permissions.all()) == []


def test_shop_limited_staff_cannot_change_their_own_or_another_staff_or_a_superuser_account(
    tenant_a: Tenant,
) -> None:
    me, client = staff("alpha-staff", SHOP_A, perms=USER_PERMS)
    peer, _ = staff("alpha-peer", SHOP_A)
    root = UserFactory(username="root", is_staff=True, is_superuser=True)
    ShopMembershipFactory(user=root, shop=tenant_a.shop, role="owner")
    hashes = {u.pk: u.password for u in (me, peer, root)}

    for target in (me, peer, root):
        change = client.post(
            f"{USERS}{target.pk}/change/",
            {"username": target.username, "is_active": "on", "is_superuser": "on", **inline_form("memberships", [], 0)},
        )
        password = client.post(
            f"{USERS}{target.pk}/password/", {"password1": "Taken-over-123", "password2": "Taken-over-123"}
        )
        delete = client.post(f"{USERS}{target.pk}/delete/", {"post": "yes"})
        assert (change.status_code, password.status_code, delete.status_code) == (403, 403, 403), target.username

    bulk = client.post(USERS, {"action": "delete_selected", "_selected_action": [peer.pk, root.pk], "post": "yes"})
    assert bulk.status_code == 403
    for target in (me, peer, root):
        target.refresh_from_db()
        assert target.password == hashes[target.pk]
    assert (me.is_superuser, peer.is_superuser, root.is_superuser) == (False, False, True)


def test_shop_limited_staff_cannot_add_user_accounts_or_shops(tenant_a: Tenant) -> None:
    _, client = staff("alpha-staff", SHOP_A, perms=(*USER_PERMS, "view_shop", "add_shop"))

    user = client.post(
        f"{USERS}add/", {"username": "sockpuppet", "password1": "Sock-puppet-123", "password2": "Sock-puppet-123"}
    )
    shop = client.post("/admin/tenancy/shop/add/", {"domain": "new.myshopify.com", "name": "New"})

    assert user.status_code == shop.status_code == 403
    assert not User.objects.filter(username="sockpuppet").exists()
    assert not ShopMembership.objects.filter(shop_id="new.myshopify.com").exists()


def test_groups_are_managed_by_superusers_only(tenant_a: Tenant) -> None:
    me, client = staff("alpha-staff", SHOP_A, perms=("view_group", "add_group", "change_group"))
    mine = Group.objects.create(name="alpha-team")
    me.groups.add(mine)
    everything = Permission.objects.get(codename="view_all_shops")

    listing = client.get("/admin/auth/group/")
    change = client.post(f"/admin/auth/group/{mine.pk}/change/", {"name": "alpha-team", "permissions": [everything.pk]})

    assert listing.status_code == change.status_code == 403
    assert list(mine.permissions.all()) == []


# --- 4. a shop outside the staff user's shops is a form error, never a 500 --------------------


def test_admin_add_form_with_another_shop_is_a_form_error_and_writes_nothing(
    tenant_a: Tenant, tenant_b: Tenant
) -> None:
    _, client = staff("alpha-staff", SHOP_A, perms=("add_adcampaign", "view_adcampaign"))
    form = {
        "platform": "google_ads",
        "platform_campaign_id": "123",
        "campaign_name": "Smuggled",
        "currency": "USD",
        "bid_strategy": "manual_cpc",
        "campaign_status": "draft",
        "performance-TOTAL_FORMS": 0,
        "performance-INITIAL_FORMS": 0,
    }

    refused = client.post(f"{CAMPAIGNS}add/", {**form, "shop": SHOP_B})
    accepted = client.post(f"{CAMPAIGNS}add/", {**form, "shop": SHOP_A})

    assert refused.status_code == 200
    assert form_errors(refused) == {"shop": ["Select a valid choice. That choice is not one of the available choices."]}
    assert accepted.status_code == 302
    with atomic_scope(service_scope()):
        assert sorted(AdCampaign.objects.filter(campaign_name="Smuggled").values_list("shop_id", flat=True)) == [SHOP_A]
