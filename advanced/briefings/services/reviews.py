"""Staff review of CEO briefings: a rating, notes, and who reviewed the briefing when.

The briefing job never touches these columns (`briefing_save` writes only the generated ones),
so a review survives a re-run of the briefing. Every review, from the change page or from the
"mark reviewed" bulk action, stamps `reviewed_by` and `reviewed_at` here and nowhere else.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from tenancy.errors import Refused
from tenancy.models import User
from tenancy.services import row_update

from ..models import CeoBriefing

RATING_MIN, RATING_MAX = 1, 5
FEEDBACK_NOTES_MAX_LENGTH = 10_000


def briefing_review_errors(*, rating: Any, feedback_notes: Any) -> dict[str, list[str]]:
    """Every problem of a review, by field (empty: the review is valid). Forms show these
    before anything is written; `briefing_review` refuses with the same messages."""
    errors: dict[str, list[str]] = {}
    if rating is not None and (
        isinstance(rating, bool) or not isinstance(rating, int) or not RATING_MIN <= rating <= RATING_MAX
    ):
        errors["rating"] = [
            f"Rate from {RATING_MIN} (poor) to {RATING_MAX} (excellent), or leave unrated; got {rating!r}."
        ]
    if not isinstance(feedback_notes, str):
        errors["feedback_notes"] = ["Feedback notes must be text."]
    elif len(feedback_notes) > FEEDBACK_NOTES_MAX_LENGTH:
        errors["feedback_notes"] = [
            f"Keep feedback notes under {FEEDBACK_NOTES_MAX_LENGTH:,} characters; got {len(feedback_notes):,}."
        ]
    return errors


@transaction.atomic
def briefing_review(*, briefing: CeoBriefing, rating: int | None, feedback_notes: str, reviewer: User) -> CeoBriefing:
    """Record `reviewer`'s rating (1-5, or None for unrated) and notes, stamped with the time.

    The row is locked first, so two reviewers saving at once apply one after the other (the
    last one is the recorded reviewer). Invalid input raises `Refused` by field and
    writes nothing.
    """
    errors = briefing_review_errors(rating=rating, feedback_notes=feedback_notes)
    if errors:
        raise Refused(errors)
    locked = CeoBriefing.objects.select_for_update().get(pk=briefing.pk)
    return row_update(
        instance=locked,
        data={
            "rating": rating,
            "feedback_notes": feedback_notes,
            "reviewed_by": reviewer,
            "reviewed_at": timezone.now(),
        },
    )


@transaction.atomic
def briefings_mark_reviewed(*, briefings: QuerySet[CeoBriefing], reviewer: User) -> int:
    """Stamp every briefing of `briefings` not reviewed yet as reviewed by `reviewer`, keeping
    its rating and notes; returns how many were stamped. All or nothing. Briefings reviewed
    already keep their reviewer: marking them again would overwrite who actually read them."""
    # Joins (an admin list's select_related) are dropped: FOR UPDATE cannot lock the nullable
    # side of an outer join, and only the briefings themselves need locking.
    pending = list(briefings.select_related(None).select_for_update().filter(reviewed_at__isnull=True).order_by("pk"))
    for briefing in pending:
        briefing_review(
            briefing=briefing, rating=briefing.rating, feedback_notes=briefing.feedback_notes, reviewer=reviewer
        )
    return len(pending)
