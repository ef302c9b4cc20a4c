"""Writes and multi-step operations of the advanced app (experiments, knowledge base, briefings)."""

from .briefings import BriefingError as BriefingError
from .briefings import briefing_generate as briefing_generate
from .briefings import briefing_metrics_build as briefing_metrics_build
from .briefings import briefing_period as briefing_period
from .experiments import AnalysisResult as AnalysisResult
from .experiments import VariantAnalysis as VariantAnalysis
from .experiments import experiment_analyze as experiment_analyze
from .experiments import experiment_archive as experiment_archive
from .experiments import experiment_complete as experiment_complete
from .experiments import experiment_pause as experiment_pause
from .experiments import experiment_resume as experiment_resume
from .experiments import experiment_review as experiment_review
from .experiments import experiment_start as experiment_start
from .experiments import variant_errors as variant_errors
from .experiments import variant_keys as variant_keys
from .knowledge import EmbeddingUnavailable as EmbeddingUnavailable
from .knowledge import KnowledgeConflict as KnowledgeConflict
from .knowledge import KnowledgeSearchResult as KnowledgeSearchResult
from .knowledge import knowledge_document_delete as knowledge_document_delete
from .knowledge import knowledge_document_revise as knowledge_document_revise
from .knowledge import knowledge_document_save as knowledge_document_save
from .knowledge import knowledge_index_rebuild as knowledge_index_rebuild
from .knowledge import knowledge_search as knowledge_search
from .reviews import briefing_review as briefing_review
