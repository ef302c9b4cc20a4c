"""How a service refuses, in the domain's words: no HTTP, no DRF.

Services raise these; each caller shows them its own way. The API edge
(`tenancy.api.errors.exception_handler`) maps each kind to its status code and the API's one
JSON error shape, once; the admin shows `problems` as form errors or messages; commands print
them. A kind is chosen by what went wrong, not by who asked:

- `Refused`: the input or the move breaks a rule (a field's value, a lifecycle step, a key
  that exists already). Carries field errors.
- `Forbidden`: the actor may not do this to this row.
- `NotFound`: the row named does not exist (or is not visible to the actor).
- `Conflict`: the row moved on while the caller was looking at it; reload and try again.
- `Unavailable`: a provider the service depends on failed; nothing was written.

`detail` has the shape DRF's ValidationError takes (a message, a list of messages, or a dict
of field name to messages, nested for lists of objects), so the API's bodies stay as they were.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

# The key of problems that concern no single field (DRF's name for it, kept for the API's bodies).
NON_FIELD = "non_field_errors"


def walk(detail: Any, path: str = "") -> Iterator[tuple[str | None, Any]]:
    """(dotted field path or None, leaf) of every problem a nested `detail` names, in order.

    The leaf is yielded as found, so that a caller may read more than its text (the API's
    `flatten` reads the `code` of DRF's ErrorDetail); `problems` and `flatten` are this one walk."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = "" if key == NON_FIELD else str(key)
            yield from walk(value, f"{path}.{name}".strip(".") if name else path)
    elif isinstance(detail, list | tuple):
        # A list of messages belongs to the field itself; a list holding objects is a list of
        # nested inputs, each named by its position.
        if all(isinstance(item, str) for item in detail):
            yield from ((path or None, item) for item in detail)
        else:
            for position, item in enumerate(detail):
                yield from walk(item, f"{path}.{position}".strip("."))
    else:
        yield path or None, detail


def problems(detail: Any, path: str = "") -> list[tuple[str | None, str]]:
    """(dotted field path or None, message) of every problem a nested `detail` names."""
    return [(name, str(leaf)) for name, leaf in walk(detail, path)]


class DomainError(Exception):
    """A service's refusal. `code` is a short machine-readable reason ("invalid_transition")."""

    default_detail: ClassVar[str] = "The request failed."
    default_code: ClassVar[str] = "error"

    def __init__(self, detail: Any = None, *, code: str | None = None) -> None:
        self.detail: Any = self.default_detail if detail is None else detail
        self.code: str = code or self.default_code
        super().__init__(self.detail)

    @property
    def problems(self) -> list[tuple[str | None, str]]:
        return problems(self.detail)

    @property
    def fields(self) -> dict[str | None, list[str]]:
        """The messages grouped by field (None: the whole input)."""
        grouped: dict[str | None, list[str]] = {}
        for name, message in self.problems:
            grouped.setdefault(name, []).append(message)
        return grouped

    def __str__(self) -> str:
        return " ".join(message for _, message in self.problems)


class Refused(DomainError):
    default_detail = "Invalid input."
    default_code = "invalid"


class Forbidden(DomainError):
    default_detail = "You do not have permission to perform this action."
    default_code = "permission_denied"


class NotFound(DomainError):
    default_detail = "Not found."
    default_code = "not_found"


class Conflict(DomainError):
    default_detail = "The row changed; reload it and try again."
    default_code = "conflict"


class Unavailable(DomainError):
    default_detail = "A service this operation depends on failed."
    default_code = "unavailable"


__all__ = [
    "NON_FIELD",
    "Conflict",
    "DomainError",
    "Forbidden",
    "NotFound",
    "Refused",
    "Unavailable",
    "problems",
    "walk",
]
