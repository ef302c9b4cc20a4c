"""The building blocks of every domain admin: audited rows, shop-scoped rows, child rows that
copy their parent's shop, and read-only inlines of measurements.

Which shops and users a staff member may see is a security rule and stays in `tenancy.admin`
(`VisibleChoicesAdmin`, `visible_shops`, `SHOP_FILTER`); these classes build on it.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.forms import BaseInlineFormSet
from django.http import HttpRequest

from tenancy.admin import VisibleChoicesAdmin
from tenancy.models import AuditedModel

# Who wrote a row and when: maintained by the database and the ORM, never typed by staff.
AUDIT_FIELDS = ("created_by", "created_at", "updated_at")


class AuditedAdmin(VisibleChoicesAdmin, admin.ModelAdmin):
    """Audit columns are read-only; a row staff add records the staff member as its writer."""

    readonly_fields: ClassVar[tuple[str, ...]] = AUDIT_FIELDS

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if not change and isinstance(obj, AuditedModel) and request.user.is_authenticated:
            obj.created_by = str(request.user.pk)
        super().save_model(request, obj, form, change)

    def log_deletions(self, request: HttpRequest, queryset: Any) -> Any:
        """Django's deletion entries, each naming the shop the row belonged to: the row is gone
        afterwards, and an erasure (shopify/erasure.py) finds the entries of its shop by that
        name (the entry's `object_repr` is a campaign's name, a document's title)."""
        from django.contrib.admin.models import DELETION, LogEntry

        user_id = request.user.pk
        assert user_id is not None  # the admin's views need a signed-in staff member
        by_shop: dict[str, list[Any]] = {}
        for obj in queryset:
            by_shop.setdefault(str(getattr(obj, "shop_id", "") or ""), []).append(obj)
        entries: list[Any] = []
        for shop, objects in by_shop.items():
            logged = LogEntry.objects.log_actions(
                user_id=user_id,
                queryset=objects,
                action_flag=DELETION,
                change_message=f"Deleted from shop {shop}." if shop else "",
            )
            entries.extend(logged if isinstance(logged, list) else [logged])
        return entries


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
