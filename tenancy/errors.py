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

from typing import Any, ClassVar

# The key of problems that concern no single field (DRF's name for it, kept for the API's bodies).
NON_FIELD = "non_field_errors"


def problems(detail: Any, path: str = "") -> list[tuple[str | None, str]]:
    """(dotted field path or None, message) of every problem a nested `detail` names."""
    out: list[tuple[str | None, str]] = []
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = "" if key == NON_FIELD else str(key)
            out.extend(problems(value, f"{path}.{name}".strip(".") if name else path))
    elif isinstance(detail, list | tuple):
        if all(isinstance(item, str) for item in detail):
            out.extend((path or None, str(item)) for item in detail)
        else:
            for position, item in enumerate(detail):
                out.extend(problems(item, f"{path}.{position}".strip(".")))
    else:
        out.append((path or None, str(detail)))
    return out


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


__all__ = ["NON_FIELD", "Conflict", "DomainError", "Forbidden", "NotFound", "Refused", "Unavailable", "problems"]
