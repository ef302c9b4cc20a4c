"""The canonical onboarding steps: the one list the API, the summary and demo data share."""

from __future__ import annotations

# In the order a new shop goes through them; a step's position is its default step_order.
ONBOARDING_STEPS: tuple[str, ...] = (
    "connect-store",
    "import-products",
    "connect-google-ads",
    "connect-social",
    "run-first-seo-audit",
    "invite-team",
)


def onboarding_step_position(step_key: str) -> int | None:
    """Where a step sits in the canonical list (its default step_order); None if unknown."""
    try:
        return ONBOARDING_STEPS.index(step_key)
    except ValueError:
        return None
