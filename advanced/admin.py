"""Back office for experiments and their results, the knowledge base and CEO briefings.

Staff review here: briefings are read as a report (summary, metrics table, ranked insights) and
rated; experiments are read through their latest figures and a chart of each variant's
conversion rate with its confidence interval, and moved through their lifecycle by actions;
knowledge documents are edited as new versions. Every write goes through the feature's services
(`advanced.<feature>.services`), and a service's refusal is shown where the input was given: as
a form error on a change page, as an error message for an action. Nothing is half-saved. Each
feature's admin lives in its package (`advanced/<feature>/admin.py`); Django finds them here.
"""

from .briefings import admin as briefings
from .experiments import admin as experiments
from .knowledge import admin as knowledge

__all__ = ["briefings", "experiments", "knowledge"]
