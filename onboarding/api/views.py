"""Onboarding resources: each user's progress through a shop's setup steps, and feature tours.

Besides CRUD, each resource has workflow actions that call the services in
`onboarding.services`, where the rules of every move live.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import Serializer

from tenancy.api.viewsets import TenantViewSet
from tenancy.models import User

from .. import services
from ..filters import FeatureTourFilterSet, OnboardingProgressFilterSet
from ..models import FeatureTour, OnboardingProgress
from .serializers import (
    FeatureTourSerializer,
    OnboardingProgressSerializer,
    OnboardingStepCompleteSerializer,
    OnboardingStepSerializer,
    OnboardingSummarySerializer,
)

STEP_ACTION_DOC = (
    "Takes the step by its key in the body (a step's row may not exist yet). Answers with the "
    "step's progress; an illegal move is a 400 naming the field and reason, and changes nothing."
)


class OnboardingProgressViewSet(TenantViewSet):
    """The caller's own progress through the shop's onboarding steps (other users' is not visible)."""

    queryset = OnboardingProgress.objects.all()
    serializer_class = OnboardingProgressSerializer
    filterset_class = OnboardingProgressFilterSet
    owner_fields = ("shop", "user")
    ordering_fields = ["step_order", "step_key", "status", "created_at"]
    ordering = ["step_order", "step_key"]

    def _body(self, serializer_class: type[Serializer[Any]]) -> dict[str, Any]:
        body = serializer_class(data=self.request.data)
        body.is_valid(raise_exception=True)
        return dict(body.validated_data)

    def _user(self) -> User:
        user = self.request.user
        assert isinstance(user, User), "authentication ran before the view"
        return user

    def _shop_domain(self) -> str:
        return self.tenant.required_shop

    def _own_progress(self, step_key: str) -> OnboardingProgress:
        # Row level security already limits rows to the caller in this shop; the filter says so.
        progress = (
            OnboardingProgress.objects.for_user(self._user().pk)
            .for_shop(self._shop_domain())
            .filter(step_key=step_key)
            .first()
        )
        if progress is None:
            raise NotFound(f"You have no progress on step {step_key!r} in this shop; start it first.")
        return progress

    def _progress_response(self, progress: OnboardingProgress) -> Response:
        return Response(self.get_serializer(progress).data)

    @extend_schema(
        request=OnboardingStepSerializer,
        responses=OnboardingProgressSerializer,
        description="Start (or resume) a step: in_progress, attempts + 1, started_at set on the first start. "
        "Creates the step's row if missing. A completed or skipped step is reopened with retry. " + STEP_ACTION_DOC,
    )
    @action(detail=False, methods=["post"])
    def start(self, request: Request) -> Response:
        body = self._body(OnboardingStepSerializer)
        progress = services.onboarding_step_start(
            user=self._user(),
            shop_domain=self._shop_domain(),
            step_key=body["step_key"],
        )
        return self._progress_response(progress)

    @extend_schema(
        request=OnboardingStepCompleteSerializer,
        responses=OnboardingProgressSerializer,
        description="Complete a step in progress: completed_at set, time_spent_seconds added to the step's "
        "total. 404 if the caller has no progress on the step. " + STEP_ACTION_DOC,
    )
    @action(detail=False, methods=["post"])
    def complete(self, request: Request) -> Response:
        body = self._body(OnboardingStepCompleteSerializer)
        progress = services.onboarding_step_complete(
            progress=self._own_progress(body["step_key"]), time_spent_seconds=body["time_spent_seconds"]
        )
        return self._progress_response(progress)

    @extend_schema(
        request=OnboardingStepSerializer,
        responses=OnboardingProgressSerializer,
        description="Skip a step that is not started or in progress (creates the step's row if missing). "
        + STEP_ACTION_DOC,
    )
    @action(detail=False, methods=["post"])
    def skip(self, request: Request) -> Response:
        body = self._body(OnboardingStepSerializer)
        progress = services.onboarding_progress_ensure(
            user=self._user(),
            shop_domain=self._shop_domain(),
            step_key=body["step_key"],
        )
        return self._progress_response(services.onboarding_step_skip(progress=progress))

    @extend_schema(
        request=OnboardingStepSerializer,
        responses=OnboardingProgressSerializer,
        description="Reopen a completed or skipped step: in_progress, attempts + 1, completed_at cleared. "
        "404 if the caller has no progress on the step. " + STEP_ACTION_DOC,
    )
    @action(detail=False, methods=["post"])
    def retry(self, request: Request) -> Response:
        body = self._body(OnboardingStepSerializer)
        progress = services.onboarding_step_retry(progress=self._own_progress(body["step_key"]))
        return self._progress_response(progress)

    @extend_schema(
        responses=OnboardingSummarySerializer,
        filters=False,
        description="Counts by status over the canonical steps, percent complete and the next step.",
    )
    @action(detail=False, methods=["get"], pagination_class=None, filter_backends=[])
    def summary(self, request: Request) -> Response:
        summary = services.onboarding_summary(
            user=self._user(),
            shop_domain=self._shop_domain(),
        )
        return Response(OnboardingSummarySerializer(summary).data)


TOUR_ACTION_DOC = (
    "No body. Answers with the tour; a completed or dismissed tour refuses every move, and an "
    "illegal move is a 400 naming the field and reason that changes nothing."
)


def _tour_action(description: str) -> Any:
    return extend_schema(request=None, responses=FeatureTourSerializer, description=f"{description} {TOUR_ACTION_DOC}")


class FeatureTourViewSet(TenantViewSet):
    """The caller's own feature tours; they follow the user across shops, so X-Shop-Domain is optional."""

    queryset = FeatureTour.objects.all()
    serializer_class = FeatureTourSerializer
    filterset_class = FeatureTourFilterSet
    owner_fields = ("user",)
    shop_required = False
    ordering_fields = ["tour_key", "status", "last_shown_at", "created_at"]
    ordering = ["tour_key"]

    def _tour_response(self, tour: FeatureTour) -> Response:
        return Response(self.get_serializer(tour).data)

    @_tour_action("The tour was displayed: times_shown + 1, last_shown_at now, a pending tour becomes active.")
    @action(detail=True, methods=["post"])
    def show(self, request: Request, pk: str | None = None) -> Response:
        return self._tour_response(services.tour_show(tour=self.get_object()))

    @_tour_action("Next step of an active tour. At the last step this is a 400: finishing is the complete action.")
    @action(detail=True, methods=["post"])
    def advance(self, request: Request, pk: str | None = None) -> Response:
        return self._tour_response(services.tour_advance(tour=self.get_object()))

    @_tour_action("Previous step of an active tour; at step 0 this is a 400.")
    @action(detail=True, methods=["post"])
    def back(self, request: Request, pk: str | None = None) -> Response:
        return self._tour_response(services.tour_back(tour=self.get_object()))

    @_tour_action("The user interacted with an active tour: interactions + 1.")
    @action(detail=True, methods=["post"])
    def interact(self, request: Request, pk: str | None = None) -> Response:
        return self._tour_response(services.tour_interact(tour=self.get_object()))

    @_tour_action("The user finished an active tour: completed, completed_at now.")
    @action(detail=True, methods=["post"])
    def complete(self, request: Request, pk: str | None = None) -> Response:
        return self._tour_response(services.tour_complete(tour=self.get_object()))

    @_tour_action("The user closed a pending or active tour for good: dismissed, dismissed_at now.")
    @action(detail=True, methods=["post"])
    def dismiss(self, request: Request, pk: str | None = None) -> Response:
        return self._tour_response(services.tour_dismiss(tour=self.get_object()))
