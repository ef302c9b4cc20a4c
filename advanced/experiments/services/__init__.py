"""Writes and multi-step operations on experiments, in named parts:

- `lifecycle`: the rules of `variants` and of the design, and the moves between statuses;
- `analysis`: the statistical analysis (`experiment_analyze`, `experiment_review`) and its history.
"""

from .analysis import AnalysisResult as AnalysisResult
from .analysis import LiftPoint as LiftPoint
from .analysis import VariantAnalysis as VariantAnalysis
from .analysis import experiment_analyze as experiment_analyze
from .analysis import experiment_design as experiment_design
from .analysis import experiment_review as experiment_review
from .analysis import experiments_to_analyze as experiments_to_analyze
from .lifecycle import DECIDED_STATUSES as DECIDED_STATUSES
from .lifecycle import DESIGN_FIELDS as DESIGN_FIELDS
from .lifecycle import INVALID_TRANSITION as INVALID_TRANSITION
from .lifecycle import TRANSITIONS as TRANSITIONS
from .lifecycle import design_change_errors as design_change_errors
from .lifecycle import design_errors as design_errors
from .lifecycle import experiment_archive as experiment_archive
from .lifecycle import experiment_complete as experiment_complete
from .lifecycle import experiment_pause as experiment_pause
from .lifecycle import experiment_resume as experiment_resume
from .lifecycle import experiment_start as experiment_start
from .lifecycle import variant_errors as variant_errors
from .lifecycle import variant_keys as variant_keys
from .lifecycle import variants_change_error as variants_change_error
