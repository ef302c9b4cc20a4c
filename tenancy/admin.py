"""Admin for users, shops and memberships, and the building blocks the other apps' admins share.

A first version of the back office: lists that stay at a constant number of queries however
many rows a table holds (`list_select_related` for every relation a list shows), and forms that
cannot break the invariants the database enforces (copied `shop_domain`, generated ratios).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from django import forms
from django.contrib import admin
from django.contrib.admin.options import BaseModelAdmin
from django.contrib.auth.admin import GroupAdmin as DjangoGroupAdmin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.models import Group
from django.db.models import Count, QuerySet
from django.db.models.fields.related import RelatedField
from django.forms import BaseInlineFormSet
from django.http import HttpRequest

from .models import AuditedModel, Shop, ShopMembership, User
from .scope import BACK_OFFICE, SERVICE_ROLE, active_scope

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise

# Who wrote a row and when: maintained by the database and the ORM, never typed by staff.
AUDIT_FIELDS = ("created_by", "created_at", "updated_at")
# Shops and memberships predate the audit convention's `created_by`.
TIMESTAMP_FIELDS = ("created_at", "updated_at")


def scope_shops() -> tuple[str, ...] | None:
    """The shops the current scope may see in the admin; None is every shop.

    The one source of "which shops may this staff user see": the back-office scope the
    middleware entered for the request (the list the row level security policies read from
    app.staff_shops). A service scope sees every shop; no scope, or a tenant's, sees none: the
    directory tables fail closed as the policies do.
    """
    scope = active_scope()
    if scope is not None and scope.role == SERVICE_ROLE:
        return None
    if scope is None or scope.role != BACK_OFFICE:
        return ()
    return scope.staff_shops


def visible_shops(queryset: QuerySet[Any], field: str = "domain") -> QuerySet[Any]:
    """`queryset` (of shops, or of rows with a shop `field`) limited to the shops the current
    back-office scope may see. `shops` and `shop_memberships` are directory tables without
    row level security, so staff limited to some shops are limited here, in the admin."""
    shops = scope_shops()
    return queryset if shops is None else queryset.filter(**{f"{field}__in": shops})


def visible_users(queryset: QuerySet[Any], field: str = "pk") -> QuerySet[Any]:
    """`queryset` (of users, or of rows with a user `field`) limited to members of the shops
    the current scope may see: the user directory of shop-limited staff (`users` has no row
    level security either; the feature_tours policy draws the same line)."""
    shops = scope_shops()
    if shops is None:
        return queryset
    members = ShopMembership.objects.filter(shop_id__in=shops).values("user_id")
    return queryset.filter(**{f"{field}__in": members})


def may_manage(request: HttpRequest, user: User) -> bool:
    """Whether the staff user of `request` may change `user`'s account and shop memberships.

    A staff account's flags, groups, permissions and memberships are its back-office access,
    and only superusers change that: no other staff user can change their own access or a
    peer's (or reset a superuser's password). Which users they reach at all is `visible_users`.
    """
    return bool(request.user.is_superuser) or not (user.is_staff or user.is_superuser)


def manageable_users(request: HttpRequest, queryset: QuerySet[User]) -> QuerySet[User]:
    """The visible users whose account and memberships the staff user may change (may_manage)."""
    queryset = visible_users(queryset)
    return queryset if request.user.is_superuser else queryset.filter(is_staff=False, is_superuser=False)


class VisibleChoicesAdmin(BaseModelAdmin):
    """Every form field that points at a shop or a user offers and accepts only what the staff
    user may see.

    Django validates a submitted choice against the field's queryset, so this is the
    server-side check: an autocomplete widget only filters what it offers, and a POST may name
    any primary key. Rows of tenant tables (campaigns, posts, experiments) need no such limit,
    because row level security already hides other shops' rows from the field's queryset.
    Mixed into every admin and inline of the project (a test checks every form field).
    """

    def get_field_queryset(self, db: Any, db_field: RelatedField[Any, Any], request: HttpRequest) -> Any:
        queryset = super().get_field_queryset(db, db_field, request)
        related = db_field.related_model
        if related is Shop:
            return visible_shops(queryset if queryset is not None else Shop.objects.using(db).all())
        if related is User:
            return visible_users(queryset if queryset is not None else User.objects.using(db).all())
        return queryset


class ShopListFilter(admin.RelatedFieldListFilter):
    """The "By shop" filter, listing only the shops the staff member may see."""

    def field_choices(
        self, field: Any, request: HttpRequest, model_admin: admin.ModelAdmin
    ) -> list[tuple[str, StrOrPromise]]:
        shops = visible_shops(Shop.objects.order_by("domain"))
        return [(str(shop.pk), str(shop)) for shop in shops]


# list_filter entry of every shop-scoped changelist.
SHOP_FILTER = ("shop", ShopListFilter)


class AuditedAdmin(VisibleChoicesAdmin, admin.ModelAdmin):
    """Audit columns are read-only; a row staff add records the staff member as its writer."""

    readonly_fields: ClassVar[tuple[str, ...]] = AUDIT_FIELDS

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if not change and isinstance(obj, AuditedModel) and request.user.is_authenticated:
            obj.created_by = str(request.user.pk)
        super().save_model(request, obj, form, change)


class ShopScopedAdmin(AuditedAdmin):
    """A table whose rows belong to one shop. Shops are picked by autocomplete: there are many."""

    autocomplete_fields: ClassVar[tuple[str, ...]] = ("shop",)
    list_select_related: ClassVar[tuple[str, ...]] = ("shop",)


class ShopChildForm(forms.ModelForm):
    """A child row stays in its shop: once saved, it may only be moved to a parent of that shop.

    Saving copies the parent's shop onto the row, so picking another shop's parent would
    silently move the row (and its measurements) to that shop. Refused as a form error instead.
    """

    # Set by ShopChildAdmin.get_form from the admin's own parent_field.
    parent_field: ClassVar[str] = ""

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        parent = cleaned.get(self.parent_field)
        shop = self.instance.shop_id if self.instance.pk is not None else None
        if parent is not None and shop is not None and parent.shop_id != shop:
            self.add_error(
                self.parent_field,
                f"{parent} belongs to {parent.shop_id}; this row belongs to {shop} and cannot move to another shop.",
            )
        return cleaned


class ShopChildAdmin(AuditedAdmin):
    """A child row that carries copies of its parent's columns (`shop_domain`, ...).

    The composite foreign key `(parent_id, shop_domain) -> parent(id, shop_domain)` refuses a
    row whose copy disagrees with its parent, so the copies are not offered in the form: they
    are shown read-only and taken from the parent when the row is saved.
    """

    parent_field: ClassVar[str]
    copied_from_parent: ClassVar[tuple[str, ...]] = ("shop_id",)
    form = ShopChildForm

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, change, **kwargs)
        if issubclass(form, ShopChildForm):
            # modelform_factory made this class for this request: setting it here is local.
            form.parent_field = self.parent_field
        return form

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        parent = getattr(obj, self.parent_field)
        for attname in self.copied_from_parent:
            setattr(obj, attname, getattr(parent, attname))
        super().save_model(request, obj, form, change)


class LatestRowsFormSet(BaseInlineFormSet):
    """An inline formset that shows only the newest `max_rows` children, in the inline's ordering.

    A campaign accumulates a performance row a day; rendering years of them on the campaign's
    page would be slow and useless. The slice is cached because the formset asks for its
    queryset once per form, and a fresh slice would run a query each time.
    """

    max_rows = 30

    def get_queryset(self) -> QuerySet[Any]:
        if not hasattr(self, "_latest_rows"):
            self._latest_rows = super().get_queryset()[: self.max_rows]
        return self._latest_rows


class ReadOnlyTabularInline(VisibleChoicesAdmin, admin.TabularInline):
    """Measurements written by ingestion jobs: shown for context, never edited by hand."""

    extra = 0
    can_delete = False
    show_change_link = True
    formset = LatestRowsFormSet

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class MembershipRules(VisibleChoicesAdmin):
    """Who may be given a membership: users the staff user may manage (never themselves or
    another staff user, unless a superuser), in shops they see (VisibleChoicesAdmin). The role
    is free: a member's role opens that shop's data through the API, which the staff user sees
    already."""

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "user":
            kwargs["queryset"] = manageable_users(request, User.objects.order_by("username"))
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


class MembershipInlineRules(MembershipRules):
    """An inline's rows are all editable or none, so it lists only the memberships the staff
    user may change; a POST naming another row's id is refused as an unknown choice."""

    def get_queryset(self, request: HttpRequest) -> QuerySet[ShopMembership]:
        rows = visible_shops(super().get_queryset(request), "shop")
        if request.user.is_superuser:
            return rows
        return rows.filter(user__in=manageable_users(request, User.objects.all()))


class MembershipInline(MembershipInlineRules, admin.TabularInline):
    model = ShopMembership
    extra = 0
    autocomplete_fields = ("user",)
    fields = ("user", "role", "created_at")
    readonly_fields = ("created_at",)
    ordering = ("user__username",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[ShopMembership]:
        return super().get_queryset(request).select_related("user")


class UserMembershipInline(MembershipInlineRules, admin.TabularInline):
    model = ShopMembership
    extra = 0
    autocomplete_fields = ("shop",)
    fields = ("shop", "role", "created_at")
    readonly_fields = ("created_at",)
    ordering = ("shop__domain",)
    verbose_name_plural = "shop memberships"


# What a user may do in the back office: only superusers see or change these.
PRIVILEGE_FIELDS = ("is_staff", "is_superuser", "groups", "user_permissions")


def without_privileges(request: HttpRequest, names: Any) -> Any:
    return names if request.user.is_superuser else tuple(name for name in names if name not in PRIVILEGE_FIELDS)


@admin.register(User)
class UserAdmin(VisibleChoicesAdmin, DjangoUserAdmin):
    """The user directory: shop-limited staff see the members of their shops (visible_users)
    and change only accounts they may manage (may_manage); the privilege fields are not in
    their forms at all, so a POST that names them changes nothing."""

    list_display = (
        "username",
        "email",
        "first_name",
        "last_name",
        "is_staff",
        "is_superuser",
        "is_active",
        "last_login",
        "date_joined",
    )
    list_filter = ("is_staff", "is_superuser", "is_active")
    search_fields = ("username", "first_name", "last_name", "email", "=id")
    ordering = ("username",)
    date_hierarchy = "date_joined"
    # The id is the JWT subject that `created_by` and `auth.uid()` refer to: staff look it up.
    readonly_fields = ("id", "last_login", "date_joined")
    fieldsets = ((None, {"fields": ("id", "username", "password")}), *(DjangoUserAdmin.fieldsets or ())[1:])

    def get_queryset(self, request: HttpRequest) -> QuerySet[User]:
        # Also what every user autocomplete searches.
        return visible_users(super().get_queryset(request))

    def get_fieldsets(self, request: HttpRequest, obj: User | None = None) -> Any:
        return [
            (name, {**options, "fields": without_privileges(request, options["fields"])})
            for name, options in super().get_fieldsets(request, obj)
        ]

    def get_list_display(self, request: HttpRequest) -> Any:
        return without_privileges(request, super().get_list_display(request))

    def get_list_filter(self, request: HttpRequest) -> Any:
        return without_privileges(request, super().get_list_filter(request))

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest | None = None) -> bool:
        # Django allows a changelist filter on any local field (?is_superuser__exact=1): that
        # would tell a non-superuser who among their shops' members holds privileges.
        if request is not None and not request.user.is_superuser and lookup.split("__")[0] in PRIVILEGE_FIELDS:
            return False
        return super().lookup_allowed(lookup, value, request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        # A new account belongs to no shop yet: only staff who see every shop would see it again.
        return super().has_add_permission(request) and scope_shops() is None

    def has_change_permission(self, request: HttpRequest, obj: User | None = None) -> bool:
        # Also guards the password form (user_change_password asks for it).
        return super().has_change_permission(request, obj) and (obj is None or may_manage(request, obj))

    def has_delete_permission(self, request: HttpRequest, obj: User | None = None) -> bool:
        # "Delete selected" asks for each selected row too.
        return super().has_delete_permission(request, obj) and (obj is None or may_manage(request, obj))

    def get_inlines(self, request: HttpRequest, obj: Any) -> list[type[admin.options.InlineModelAdmin]]:
        # The add page is Django's two-step username/password form; memberships come after it.
        return [UserMembershipInline] if obj is not None else []


admin.site.unregister(Group)


@admin.register(Group)
class GroupAdmin(DjangoGroupAdmin):
    """Groups carry permissions (tenancy.view_all_shops among them): staff who could edit a
    group could give their own group more, so groups are for superusers only."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.is_superuser)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_superuser)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.is_superuser)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_superuser)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_superuser)


@admin.register(Shop)
class ShopAdmin(VisibleChoicesAdmin, admin.ModelAdmin):
    list_display = ("domain", "name", "is_active", "member_count", "created_at")
    list_filter = ("is_active",)
    search_fields = ("domain", "name")
    ordering = ("domain",)
    date_hierarchy = "created_at"
    readonly_fields = TIMESTAMP_FIELDS
    inlines = (MembershipInline,)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Shop]:
        # Also what the shop autocomplete of every other admin searches.
        return visible_shops(super().get_queryset(request)).annotate(member_count=Count("memberships"))

    def has_add_permission(self, request: HttpRequest) -> bool:
        # A new shop has no members yet: only staff who see every shop would see it again.
        return super().has_add_permission(request) and scope_shops() is None

    def get_readonly_fields(self, request: HttpRequest, obj: Shop | None = None) -> tuple[str, ...]:
        # The domain is the primary key and every tenant row's key: renaming it in a form would
        # create a second shop rather than rename this one.
        return ("domain", *TIMESTAMP_FIELDS) if obj is not None else TIMESTAMP_FIELDS

    @admin.display(description="members", ordering="member_count")
    def member_count(self, obj: Shop) -> int:
        return int(getattr(obj, "member_count", 0))


@admin.register(ShopMembership)
class ShopMembershipAdmin(MembershipRules, admin.ModelAdmin):
    """Memberships are managed with Django's add/change/delete permissions on this model,
    within MembershipRules: the list shows every membership of the staff user's shops, and
    those of staff users (their own included) are read-only to anyone but superusers."""

    list_display = ("user", "shop", "role", "created_at")
    list_select_related = ("user", "shop")
    list_filter = ("role", SHOP_FILTER)
    search_fields = ("user__username", "user__email", "shop__domain", "shop__name")
    ordering = ("shop__domain", "user__username")
    date_hierarchy = "created_at"
    autocomplete_fields = ("user", "shop")
    readonly_fields = TIMESTAMP_FIELDS

    def get_queryset(self, request: HttpRequest) -> QuerySet[ShopMembership]:
        return visible_shops(super().get_queryset(request), "shop")

    def has_change_permission(self, request: HttpRequest, obj: ShopMembership | None = None) -> bool:
        return super().has_change_permission(request, obj) and (obj is None or may_manage(request, obj.user))

    def has_delete_permission(self, request: HttpRequest, obj: ShopMembership | None = None) -> bool:
        # "Delete selected" asks for each selected row too.
        return super().has_delete_permission(request, obj) and (obj is None or may_manage(request, obj.user))
