"""Admin forms whose save is a service call, and the admin that saves through them."""

from __future__ import annotations

from typing import Any, ClassVar, cast

from django import forms
from django.db import models, transaction
from django.http import HttpRequest

from tenancy.errors import DomainError
from tenancy.models import User

from .bases import ShopScopedAdmin


class ServiceModelForm(forms.ModelForm):
    """A model form whose save is a service call, made as the last step of validation.

    The service runs in a savepoint once every field is valid: if it refuses (a rule only it
    checks, a concurrent change, a provider failure), the savepoint is rolled back and the
    refusal becomes a form error, so the page shows it next to the input and nothing was
    written. The admins using these forms have no inlines, so nothing can fail after it.
    """

    # The staff user saving the form; set per request by ServiceFormAdmin.get_form.
    actor: ClassVar[User | None] = None
    saved: models.Model | None = None

    def perform(self) -> models.Model | None:
        """Call the service; return the row it saved (None: there was nothing to save)."""
        raise NotImplementedError

    def full_clean(self) -> None:
        super().full_clean()
        if not self.is_bound or self.errors:
            return
        try:
            with transaction.atomic():
                self.saved = self.perform()
        except DomainError as exc:
            for name, message in exc.problems:
                self.add_error(name if name in self.fields else None, message)


class ServiceFormAdmin(ShopScopedAdmin):
    """Saves through the form's service call (ServiceModelForm) instead of `obj.save()`."""

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, change=change, **kwargs)
        if issubclass(form, ServiceModelForm):
            # A subclass per request: the actor must never be shared between requests.
            form = cast(Any, type(form.__name__, (form,), {"actor": request.user}))
        return form

    def save_form(self, request: HttpRequest, form: Any, change: bool) -> Any:
        instance = form.save(commit=False)
        if isinstance(form, ServiceModelForm) and form.saved is not None:
            # The row the service wrote (a new knowledge version has a new id): the admin's
            # log entry and redirect must name it.
            return form.saved
        return instance

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if isinstance(form, ServiceModelForm):
            return
        super().save_model(request, obj, form, change)
