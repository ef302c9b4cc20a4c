"""Admin for users, shops and memberships, and the building blocks the other apps' admins share.

A first version of the back office: lists that stay at a constant number of queries however
many rows a table holds (`list_select_related` for every relation a list shows), and forms that
cannot break the invariants the database enforces (copied `shop_domain`, generated ratios).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from django import forms
from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.db.models import Count, QuerySet
from django.forms import BaseInlineFormSet
from django.http import HttpRequest

from .models import AuditedModel, Shop, ShopMembership, User
from .scope import BACK_OFFICE, active_scope

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise

# Who wrote a row and when: maintained by the database and the ORM, never typed by staff.
AUDIT_FIELDS = ("created_by", "created_at", "updated_at")
# Shops and memberships predate the audit convention's `created_by`.
TIMESTAMP_FIELDS = ("created_at", "updated_at")


def visible_shops(queryset: QuerySet[Any], field: str = "domain") -> QuerySet[Any]:
    """`queryset` (of shops, or of rows with a shop `field`) limited to the shops the current
    back-office scope may see. `shops` and `shop_memberships` are directory tables without
    row level security, so staff limited to some shops are limited here, in the admin."""
    scope = active_scope()
    if scope is None or scope.role != BACK_OFFICE or scope.staff_shops is None:
        return queryset
    return queryset.filter(**{f"{field}__in": scope.staff_shops})


class ShopListFilter(admin.RelatedFieldListFilter):
    """The "By shop" filter, listing only the shops the staff member may see."""

    def field_choices(
        self, field: Any, request: HttpRequest, model_admin: admin.ModelAdmin
    ) -> list[tuple[str, StrOrPromise]]:
        shops = visible_shops(Shop.objects.order_by("domain"))
        return [(str(shop.pk), str(shop)) for shop in shops]


# list_filter entry of every shop-scoped changelist.
SHOP_FILTER = ("shop", ShopListFilter)


class AuditedAdmin(admin.ModelAdmin):
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


class ReadOnlyTabularInline(admin.TabularInline):
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


class MembershipInline(admin.TabularInline):
    model = ShopMembership
    extra = 0
    autocomplete_fields = ("user",)
    fields = ("user", "role", "created_at")
    readonly_fields = ("created_at",)
    ordering = ("user__username",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[ShopMembership]:
        return super().get_queryset(request).select_related("user")


class UserMembershipInline(admin.TabularInline):
    model = ShopMembership
    extra = 0
    autocomplete_fields = ("shop",)
    fields = ("shop", "role", "created_at")
    readonly_fields = ("created_at",)
    ordering = ("shop__domain",)
    verbose_name_plural = "shop memberships"

    def get_queryset(self, request: HttpRequest) -> QuerySet[ShopMembership]:
        return visible_shops(super().get_queryset(request), "shop")


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
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

    def get_inlines(self, request: HttpRequest, obj: Any) -> list[type[admin.options.InlineModelAdmin]]:
        # The add page is Django's two-step username/password form; memberships come after it.
        return [UserMembershipInline] if obj is not None else []


@admin.register(Shop)
class ShopAdmin(admin.ModelAdmin):
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

    def get_readonly_fields(self, request: HttpRequest, obj: Shop | None = None) -> tuple[str, ...]:
        # The domain is the primary key and every tenant row's key: renaming it in a form would
        # create a second shop rather than rename this one.
        return ("domain", *TIMESTAMP_FIELDS) if obj is not None else TIMESTAMP_FIELDS

    @admin.display(description="members", ordering="member_count")
    def member_count(self, obj: Shop) -> int:
        return int(getattr(obj, "member_count", 0))


@admin.register(ShopMembership)
class ShopMembershipAdmin(admin.ModelAdmin):
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
