"""The models of the app's three features, where Django and the migrations look
for them (`advanced.models`). Each feature declares its own in its package; imported here in
the order the app has always registered them: experiments, the knowledge base, briefings."""

from __future__ import annotations

from .experiments.models import Experiment as Experiment
from .experiments.models import ExperimentResult as ExperimentResult
from .experiments.models import ExperimentStatus as ExperimentStatus
from .experiments.models import GuardrailMetric as GuardrailMetric
from .experiments.models import MultipleTestingCorrection as MultipleTestingCorrection
from .experiments.models import StatsEngine as StatsEngine
from .experiments.models import default_guardrails as default_guardrails

# isort: split
from .knowledge.models import DocumentType as DocumentType
from .knowledge.models import IsNotRefinedModel as IsNotRefinedModel
from .knowledge.models import KnowledgeDocument as KnowledgeDocument
from .knowledge.models import NotEqual as NotEqual
from .knowledge.models import RegConfigField as RegConfigField

# isort: split
from .briefings.models import BriefingType as BriefingType
from .briefings.models import CeoBriefing as CeoBriefing
