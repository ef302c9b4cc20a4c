"""Domain errors are mapped to HTTP once, at the API edge: each kind has its status code and
the API's one error body; the module that defines them knows nothing of HTTP or DRF."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from django.conf import settings
from rest_framework.exceptions import ErrorDetail, ValidationError

from tenancy import errors
from tenancy.api.errors import exception_handler, flatten


@pytest.mark.parametrize(
    ("error", "status", "body"),
    [
        (
            errors.Refused({"status": ["Cannot start a running experiment."]}, code="invalid_transition"),
            400,
            {
                "status": 400,
                "code": "invalid",
                "detail": "Invalid input.",
                "errors": [
                    {"field": "status", "code": "invalid_transition", "message": "Cannot start a running experiment."}
                ],
            },
        ),
        (
            errors.Forbidden("Not yours."),
            403,
            {"status": 403, "code": "permission_denied", "detail": "Not yours.", "errors": []},
        ),
        (
            errors.NotFound("No such tour."),
            404,
            {"status": 404, "code": "not_found", "detail": "No such tour.", "errors": []},
        ),
        (
            errors.Conflict(),
            409,
            {"status": 409, "code": "conflict", "detail": errors.Conflict.default_detail, "errors": []},
        ),
        (
            errors.Unavailable("The provider timed out.", code="embedding_failed"),
            502,
            {"status": 502, "code": "embedding_failed", "detail": "The provider timed out.", "errors": []},
        ),
    ],
    ids=["refused", "forbidden", "not_found", "conflict", "unavailable"],
)
def test_each_kind_of_domain_error_is_answered_with_its_status_and_the_one_error_body(
    error: errors.DomainError, status: int, body: dict
) -> None:
    response = exception_handler(error, {})
    assert response is not None
    assert response.status_code == status
    assert response.data == body


def test_a_refusal_lists_its_problems_by_dotted_field_path_for_the_admin() -> None:
    refused = errors.Refused(
        {"variants": [{"weight": ["Must be positive."]}, {}], "non_field_errors": ["Two controls."]}
    )
    assert refused.problems == [("variants.0.weight", "Must be positive."), (None, "Two controls.")]
    assert str(refused) == "Must be positive. Two controls."


def test_the_api_and_the_admin_name_the_same_problems_of_a_nested_refusal() -> None:
    # One walk (tenancy.errors.walk) serves both: the API's `errors` are the admin's problems,
    # in the same order, each with the code DRF's ErrorDetail carries.
    detail = ValidationError(
        {
            "variants": [{"weight": [ErrorDetail("Must be positive.", code="min_value")]}, {}, ["Bad key."]],
            "non_field_errors": [ErrorDetail("Two controls.", code="two_controls")],
            "name": "Required.",
        }
    ).detail
    assert flatten(detail, index=3) == [
        {"index": 3, "field": "variants.0.weight", "code": "min_value", "message": "Must be positive."},
        {"index": 3, "field": "variants.2", "code": "invalid", "message": "Bad key."},
        {"index": 3, "field": None, "code": "two_controls", "message": "Two controls."},
        {"index": 3, "field": "name", "code": "invalid", "message": "Required."},
    ]
    assert errors.problems(detail) == [(e["field"], e["message"]) for e in flatten(detail)]


def test_the_domain_errors_module_imports_nothing_of_http() -> None:
    source = (Path(settings.BASE_DIR) / "tenancy" / "errors.py").read_text(encoding="utf-8")
    modules = [
        node.module if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    ]
    assert [m for m in modules if m and m.split(".")[0] in {"rest_framework", "django"}] == []
