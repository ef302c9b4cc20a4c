"""CEO briefings: the period, the figures, the ranked insights, the summary and the stored row.

A briefing is built in three steps, so that a caller can keep a provider's network call out
of its database transactions (the command does):

1. `briefing_figures()` reads the shop's tables (in the caller's scope) and returns the
   key metrics, the ranked insights and the template summary;
2. `briefing_summary_write()` asks a summary writer for the text (no database), falling back
   to the template when the provider fails;
3. `briefing_save()` writes the row, idempotently per (shop, type, period).

`briefing_generate()` runs the three in one go.

Figures in `key_metrics` (docs/operations.md, "CEO briefings", has the reference):
- money (spend, revenue, and their change): decimal strings with two places, as the API
  serializes decimals, so no amount ever goes through a binary float;
- ROAS: a number with two places; engagement rate and confidence: numbers with four places
  (fractions, 0.0812 = 8.12 %); percentages (`change_pct`, `completion_pct`): numbers with one
  place; scores, positions and counts: integers. Halves round away from zero.
- `change` is the difference of the two figures as shown; `change_pct` is computed from the
  unrounded figures, and is null when the previous figure is zero or missing.

The package: `period` (the days covered), `figures` (every figure, read through the
selectors of growth, onboarding and advanced), `wording` and `insights` (ranked movements and
events), `summary` (the template text), `service` (the three steps and the stored row) and
`reviews` (staff review: rating, notes, who reviewed when).
"""

from .figures import METRICS_VERSION as METRICS_VERSION
from .figures import BriefingMetrics as BriefingMetrics
from .figures import briefing_metrics_build as briefing_metrics_build
from .insights import Insight as Insight
from .insights import briefing_insights as briefing_insights
from .period import BriefingError as BriefingError
from .period import BriefingPeriod as BriefingPeriod
from .period import briefing_period as briefing_period
from .reviews import briefing_review as briefing_review
from .service import BriefingFigures as BriefingFigures
from .service import BriefingSaved as BriefingSaved
from .service import BriefingSummary as BriefingSummary
from .service import briefing_exists as briefing_exists
from .service import briefing_figures as briefing_figures
from .service import briefing_generate as briefing_generate
from .service import briefing_save as briefing_save
from .service import briefing_shop_domains as briefing_shop_domains
from .service import briefing_summary_write as briefing_summary_write
from .summary import briefing_summary_template as briefing_summary_template
