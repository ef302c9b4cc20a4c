"""What the features of this app share, and only that: the admins' mark of an empty cell and a
CHECK on the JSON type of a jsonb column (experiments' `variants`, briefings' `insights`)."""

from __future__ import annotations

from django.db import models
from django.db.models import F, Func
from django.db.models.lookups import Exact

EMPTY = "—"


def jsonb_type_is(field: str, json_type: str) -> Exact:
    return Exact(
        Func(F(field), function="jsonb_typeof", output_field=models.TextField()),
        json_type,
    )
