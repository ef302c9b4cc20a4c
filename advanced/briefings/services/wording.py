"""How figures read in a briefing's sentences (insights and the template summary)."""

from __future__ import annotations

from decimal import Decimal

from ...experiments.selectors import ConcludedExperiment
from .figures import TENTH, KeywordMove, _round


def _money_text(value: Decimal, currencies: tuple[str, ...]) -> str:
    # Amounts in several currencies are summed as they are stored; the text then names no
    # currency rather than a wrong one (key_metrics.ads.currencies lists them).
    amount = f"{value:,.2f}"
    return f"{currencies[0]} {amount}" if len(currencies) == 1 else amount


def _pct_text(pct: Decimal | None) -> str:
    return "no previous figure" if pct is None else f"{pct:+.1f}%"


def _engine_text(move: KeywordMove) -> str:
    return f"{move.search_engine} {move.location}".strip()


def _confidence_text(confidence: Decimal | None) -> str:
    return "unrecorded confidence" if confidence is None else f"{_round(confidence * 100, TENTH)}% confidence"


def _winner_text(experiment: ConcludedExperiment) -> str:
    name = f" ({experiment.winning_variant_name})" if experiment.winning_variant_name else ""
    return f'"{experiment.winning_variant}"{name}'
