"""The server-rendered SVG charts: well-formed, one line per series, gaps, escaping, no data."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from decimal import Decimal

import pytest
from django.utils.safestring import SafeString

from backoffice.charts import Series, default_number_format, line_chart, nice_ticks, stacked_bar_chart

SVG = "{http://www.w3.org/2000/svg}"
HOSTILE = '</text><script>alert("x")</script><a href="javascript:evil()">&amp;'


def parse(markup: str) -> ET.Element:
    return ET.fromstring(str(markup))


def by_class(root: ET.Element, tag: str, css_class: str) -> list[ET.Element]:
    return [e for e in root.iter(f"{SVG}{tag}") if css_class in (e.get("class") or "").split()]


def series_groups(root: ET.Element) -> list[ET.Element]:
    return by_class(root, "g", "series")


def points(group: ET.Element) -> list[tuple[float, float]]:
    return [(float(c.get("cx", "nan")), float(c.get("cy", "nan"))) for c in group.iter(f"{SVG}circle")]


def all_text(root: ET.Element) -> list[str]:
    return [t.text or "" for t in root.iter() if t.tag in (f"{SVG}text", f"{SVG}title")]


def chart(*series: Series, labels: list[str] | None = None, **kwargs: object) -> ET.Element:
    n = len(series[0].values) if series else 0
    markup = line_chart(
        series=list(series),
        x_labels=labels if labels is not None else [f"2025-01-{day + 1:02d}" for day in range(n)],
        title=str(kwargs.pop("title", "Trend")),
        y_label=str(kwargs.pop("y_label", "USD")),
        **kwargs,
    )
    assert isinstance(markup, SafeString)
    return parse(markup)


def test_line_chart_is_valid_svg_with_one_polyline_and_a_point_per_value_for_each_series() -> None:
    root = chart(
        Series("Spend", [1, 2, 3, 4]), Series("Revenue", [Decimal("2.5"), 3, 5, 8]), Series("ROAS", [0, 0, 1, 1])
    )

    assert root.tag == f"{SVG}svg"
    groups = series_groups(root)
    assert [g.get("data-series") for g in groups] == ["Spend", "Revenue", "ROAS"]
    for group in groups:
        assert len(list(group.iter(f"{SVG}polyline"))) == 1
        assert len(points(group)) == 4
        assert len(group.find(f"{SVG}polyline").get("points", "").split()) == 4
    legend = [t.text for t in by_class(root, "g", "legend")[0].iter(f"{SVG}text")]
    assert legend == ["Spend", "Revenue", "ROAS"]


def test_each_point_states_its_exact_value_and_label() -> None:
    root = chart(Series("Spend", [Decimal("12.50"), Decimal("1234.56")]), labels=["2025-03-01", "2025-03-02"])

    titles = [c.find(f"{SVG}title").text for c in series_groups(root)[0].iter(f"{SVG}circle")]
    assert titles == ["Spend · 2025-03-01: 12.5", "Spend · 2025-03-02: 1,234.56"]


def test_a_missing_value_breaks_the_line_and_has_no_point() -> None:
    root = chart(Series("Position", [3, None, 5, 6, None, 2]))

    group = series_groups(root)[0]
    runs = [p.get("points", "").split() for p in group.iter(f"{SVG}polyline")]
    # [3] alone, [5, 6] together, [2] alone: only the run of two is a line; every value is a point.
    assert [len(run) for run in runs] == [2]
    assert len(points(group)) == 4


def test_points_sit_left_to_right_in_label_order_and_higher_values_higher() -> None:
    root = chart(Series("Revenue", [10, 30, 20]))

    (x0, y0), (x1, y1), (x2, y2) = points(series_groups(root)[0])
    assert x0 < x1 < x2
    # SVG y grows downwards: the largest value has the smallest y.
    assert y1 < y2 < y0


def test_inverted_axis_puts_the_smallest_value_at_the_top() -> None:
    root = chart(Series("Google · US", [10, 1, 5]), invert_y=True, y_min=1)

    (_, y_ten), (_, y_one), (_, y_five) = points(series_groups(root)[0])
    assert y_one < y_five < y_ten
    ticks = [t.text for t in by_class(root, "g", "y-axis")[0].iter(f"{SVG}text") if t.get("class") == "tick"]
    assert ticks[0] == "1"
    assert "0" not in ticks


def test_axis_has_round_ticks_covering_the_values_from_zero() -> None:
    root = chart(Series("Spend", [Decimal("12.5"), Decimal("137.5")]))

    ticks = [t.text for t in by_class(root, "g", "y-axis")[0].iter(f"{SVG}text") if t.get("class") == "tick"]
    assert ticks == ["0", "50", "100", "150"]
    assert nice_ticks(0, 137.5) == [0, 50, 100, 150]
    assert nice_ticks(0.1, 0.34) == [0.1, 0.2, 0.3, 0.4]
    # A flat line still gets a range around its value.
    assert nice_ticks(5, 5)[0] < 5 < nice_ticks(5, 5)[-1]


def test_x_labels_are_thinned_so_they_never_overlap_but_the_last_day_is_shown() -> None:
    labels = [f"2025-01-{day:02d}" for day in range(1, 31)] + [f"2025-02-{day:02d}" for day in range(1, 29)]
    root = chart(Series("Spend", list(range(len(labels)))), labels=labels, width=720)

    shown = [t.text for t in by_class(root, "g", "x-axis")[0].iter(f"{SVG}text")]
    assert 2 <= len(shown) <= 10
    assert shown[0] == "2025-01-01"
    assert shown[-1] == "2025-02-28"
    assert len(points(series_groups(root)[0])) == len(labels)


def test_hostile_labels_are_escaped_text_never_markup() -> None:
    root = chart(
        Series(HOSTILE, [1, 2]),
        labels=[HOSTILE, "<b>day</b>"],
        title=HOSTILE,
        y_label=HOSTILE,
    )

    assert not list(root.iter(f"{SVG}script"))
    assert not list(root.iter(f"{SVG}a"))
    assert not list(root.iter("script"))
    texts = all_text(root)
    assert HOSTILE in texts
    assert "<b>day</b>" in texts
    assert series_groups(root)[0].get("data-series") == HOSTILE


@pytest.mark.parametrize(
    ("series", "labels"),
    [
        ([], []),
        ([Series("Spend", [])], []),
        ([Series("Spend", [None, None])], ["a", "b"]),
    ],
    ids=["no series", "no labels", "only gaps"],
)
def test_nothing_to_plot_gives_a_no_data_chart(series: list[Series], labels: list[str]) -> None:
    root = parse(line_chart(series=series, x_labels=labels, title="Trend <1>", y_label="USD", width=400, height=200))

    assert "no-data" in (root.get("class") or "")
    assert "No data" in all_text(root)
    assert "Trend <1>" in all_text(root)
    assert not series_groups(root)
    assert (root.get("width"), root.get("height")) == ("400", "200")


def test_a_single_day_is_a_point_in_the_middle() -> None:
    root = chart(Series("Spend", [7]), width=600)

    ((x, _),) = points(series_groups(root)[0])
    assert not list(root.iter(f"{SVG}polyline"))
    assert 250 < x < 350


def test_a_series_of_the_wrong_length_is_refused() -> None:
    with pytest.raises(ValueError, match="has 2 values for 3 x labels"):
        line_chart(series=[Series("Spend", [1, 2])], x_labels=["a", "b", "c"], title="t", y_label="y")


def test_stacked_bar_chart_has_a_bar_per_category_and_a_segment_per_nonzero_stack() -> None:
    root = parse(
        stacked_bar_chart(
            categories=["connect-store", "import-products", HOSTILE],
            stacks=[Series("Completed", [2, 0, 1]), Series("Not started", [1, 3, 0])],
            title="Funnel",
        )
    )

    bars = by_class(root, "g", "bar")
    assert [b.get("data-category") for b in bars] == ["connect-store", "import-products", HOSTILE]
    segments = [[s.get("data-stack") for s in by_class(bar, "rect", "segment")] for bar in bars]
    assert segments == [["Completed", "Not started"], ["Not started"], ["Completed"]]
    totals = [t.text for t in by_class(root, "text", "total")]
    assert totals == ["3", "3", "1"]
    # Widths are proportional to the counts: 2 of 3 against 1 of 3 in the first bar.
    first = [float(s.get("width", "0")) for s in by_class(bars[0], "rect", "segment")]
    assert first[0] == pytest.approx(2 * first[1], abs=0.2)
    assert not list(root.iter(f"{SVG}script"))


def test_stacked_bar_chart_without_counts_says_no_data() -> None:
    root = parse(stacked_bar_chart(categories=["a", "b"], stacks=[Series("Completed", [0, None])], title="Funnel"))

    assert "No data" in all_text(root)
    assert not by_class(root, "g", "bar")


def test_number_format_is_short_and_exact_enough() -> None:
    assert default_number_format(1234.0) == "1,234"
    assert default_number_format(1234.5) == "1,234.5"
    assert default_number_format(12.345) == "12.35"
    assert default_number_format(0.0512) == "0.0512"
