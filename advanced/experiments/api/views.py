"""A/B experiments and their results."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from tenancy.api.bulk import BulkUpsertMixin
from tenancy.api.pagination import TimeSeriesPagination
from tenancy.api.viewsets import TenantViewSet, nested_list

from ..filters import ExperimentFilterSet, ExperimentResultFilterSet
from ..models import Experiment, ExperimentResult
from ..services import (
    experiment_analyze,
    experiment_archive,
    experiment_complete,
    experiment_pause,
    experiment_resume,
    experiment_start,
    variant_keys,
)
from .serializers import (
    ExperimentAnalysisSerializer,
    ExperimentAnalyzeSerializer,
    ExperimentCompleteSerializer,
    ExperimentResultRowSerializer,
    ExperimentResultSerializer,
    ExperimentSerializer,
)


class ExperimentViewSet(TenantViewSet):
    """A/B experiments of the shop: variants with traffic weights and one control."""

    queryset = Experiment.objects.all()
    serializer_class = ExperimentSerializer
    filterset_class = ExperimentFilterSet
    ordering_fields = ["experiment_name", "status", "started_at", "created_at"]
    ordering = ["-created_at", "-id"]

    @extend_schema(responses=ExperimentResultSerializer(many=True), filters=False)
    # The pagination class documents the cursor page shape nested_list returns.
    @action(detail=True, methods=["get"], pagination_class=TimeSeriesPagination)
    def results(self, request: Request, pk: str | None = None) -> Response:
        """The experiment's result snapshots, newest first (cursor pages)."""
        queryset = ExperimentResult.objects.filter(experiment=self.get_object())
        return nested_list(self, queryset, ExperimentResultSerializer, ("-snapshot_date", "-id"))

    def _move(
        self, service: Callable[..., Experiment], experiment: Experiment | None = None, **arguments: Any
    ) -> Response:
        moved = service(experiment=experiment or self.get_object(), **arguments)
        return Response(self.get_serializer(moved).data)

    @extend_schema(request=None, responses=ExperimentSerializer)
    @action(detail=True, methods=["post"])
    def start(self, request: Request, pk: str | None = None) -> Response:
        """draft -> running; stamps started_at. 400 (`invalid_transition`) from any other status."""
        return self._move(experiment_start)

    @extend_schema(request=None, responses=ExperimentSerializer)
    @action(detail=True, methods=["post"])
    def pause(self, request: Request, pk: str | None = None) -> Response:
        """running -> paused. 400 (`invalid_transition`) from any other status."""
        return self._move(experiment_pause)

    @extend_schema(request=None, responses=ExperimentSerializer)
    @action(detail=True, methods=["post"])
    def resume(self, request: Request, pk: str | None = None) -> Response:
        """paused -> running. 400 (`invalid_transition`) from any other status."""
        return self._move(experiment_resume)

    @extend_schema(request=ExperimentCompleteSerializer, responses=ExperimentSerializer)
    @action(detail=True, methods=["post"])
    def complete(self, request: Request, pk: str | None = None) -> Response:
        """running or paused -> completed; stamps ended_at and records `winner` if given."""
        # Another shop's experiment is a 404 whatever the body says.
        experiment = self.get_object()
        body = ExperimentCompleteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        return self._move(experiment_complete, experiment, winner=body.validated_data.get("winner"))

    @extend_schema(request=None, responses=ExperimentSerializer)
    @action(detail=True, methods=["post"])
    def archive(self, request: Request, pk: str | None = None) -> Response:
        """completed -> archived (final). A paused experiment is completed first."""
        return self._move(experiment_archive)

    @extend_schema(request=ExperimentAnalyzeSerializer, responses=ExperimentAnalysisSerializer)
    @action(detail=True, methods=["post"])
    def analyze(self, request: Request, pk: str | None = None) -> Response:
        """Statistics of every variant against control from the latest snapshots; stores each
        treatment's p-value and lift interval on its snapshot row and, when significant, the winner."""
        experiment = self.get_object()
        body = ExperimentAnalyzeSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        result = experiment_analyze(experiment=experiment, as_of=body.validated_data.get("as_of"))
        return Response(ExperimentAnalysisSerializer(result).data)


class ExperimentResultViewSet(BulkUpsertMixin, TenantViewSet):
    """One variant's cumulative figures on one day (with the CUPED covariate aggregates when
    known); conversion_rate is generated, chance_to_win and expected_loss are the analysis'."""

    queryset = ExperimentResult.objects.all()
    serializer_class = ExperimentResultSerializer
    filterset_class = ExperimentResultFilterSet
    pagination_class = TimeSeriesPagination
    ordering_fields = ["snapshot_date", "created_at"]
    ordering = ["-snapshot_date", "-id"]
    bulk_serializer_class = ExperimentResultRowSerializer
    bulk_conflict_fields = ("experiment_id", "variant_key", "snapshot_date")
    bulk_parent_columns = ("variants",)

    def bulk_parent_errors(self, rows: list[tuple[int, dict[str, Any]]]) -> list[dict[str, Any]]:
        # A row of a visible experiment must also name one of its variants.
        errors = super().bulk_parent_errors(rows)
        keys = {pk: set(variant_keys(variants)) for pk, (variants,) in self.bulk_parents(rows).items()}
        for index, row in rows:
            experiment = row["experiment_id"]
            if experiment in keys and row["variant_key"] not in keys[experiment]:
                known = ", ".join(sorted(keys[experiment])) or "none"
                message = f"{row['variant_key']!r} is not a variant of experiment {experiment} (keys: {known})."
                errors.append({"index": index, "field": "variant_key", "code": "invalid_choice", "message": message})
        return errors
