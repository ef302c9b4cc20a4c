"""The one declaration of a figure: its dataclass field, annotated with what it means.

A figure of the statistics (`VariantStatistics`, `GuardrailResult`, ...) is declared once, as a
field whose type is `Annotated[<type>, Doc("what it means")]`. The API's serializers, the OpenAPI
descriptions and the analysis' answer are derived from these fields
(`advanced.experiments.api.figures`); nothing else lists them. Pure Python: no Django.
"""

from __future__ import annotations

import dataclasses
import functools
import sys
import typing
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Doc:
    """What a figure means (its API description). `after`: where a figure of a containing
    dataclass sits among the contained one's in the answer (default: at the end)."""

    description: str
    after: str | None = None


@dataclass(frozen=True)
class DeclaredFigure:
    name: str
    # The type without its annotation (e.g. `float | None`).
    type: Any
    doc: Doc | None


@functools.cache
def declared_figures(cls: type) -> tuple[DeclaredFigure, ...]:
    """The dataclass' fields in order, each with its type and its `Doc` (None when it has none);
    worked out once per class (a serializer asks on every answer)."""
    module = sys.modules[cls.__module__]
    hints = typing.get_type_hints(cls, globalns=vars(module), include_extras=True)
    declared: list[DeclaredFigure] = []
    for field in dataclasses.fields(cls):
        hint = hints[field.name]
        doc = None
        if typing.get_origin(hint) is typing.Annotated:
            doc = next((m for m in hint.__metadata__ if isinstance(m, Doc)), None)
            hint = typing.get_args(hint)[0]
        declared.append(DeclaredFigure(field.name, hint, doc))
    return tuple(declared)
