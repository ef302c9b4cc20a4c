"""Serializers of the advanced resources, one module per domain."""

from .briefings import CeoBriefingSerializer
from .experiments import (
    ExperimentAnalysisSerializer,
    ExperimentAnalyzeSerializer,
    ExperimentCompleteSerializer,
    ExperimentResultRowSerializer,
    ExperimentResultSerializer,
    ExperimentSerializer,
)
from .knowledge import (
    KnowledgeDocumentSerializer,
    KnowledgeSearchResponseSerializer,
    KnowledgeSearchSerializer,
    vector_error,
)

__all__ = [
    "CeoBriefingSerializer",
    "ExperimentAnalysisSerializer",
    "ExperimentAnalyzeSerializer",
    "ExperimentCompleteSerializer",
    "ExperimentResultRowSerializer",
    "ExperimentResultSerializer",
    "ExperimentSerializer",
    "KnowledgeDocumentSerializer",
    "KnowledgeSearchResponseSerializer",
    "KnowledgeSearchSerializer",
    "vector_error",
]
