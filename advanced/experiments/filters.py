"""FilterSets of the experiment resources: the columns the schema indexes."""

from __future__ import annotations

from tenancy.api.filters import TenantFilterSet

from .models import Experiment, ExperimentResult


class ExperimentFilterSet(TenantFilterSet):
    class Meta:
        model = Experiment
        fields = {
            "status": ["exact", "in"],
            "experiment_key": ["exact"],
        }


class ExperimentResultFilterSet(TenantFilterSet):
    class Meta:
        model = ExperimentResult
        fields = {"experiment": ["exact"], "variant_key": ["exact"], "snapshot_date": ["gte", "lte"]}
