"""The reports' charts: SVG drawn on the server by pygal, shown as images (a `data:` URL, so
no request, no script and no style reaches the page: pygal's own tooltip script is taken out
of each drawing). Every chart has a text alternative: a sentence for `alt`, and the page shows
the same figures as a table beside it."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import pygal
from pygal.style import Style

FONT = '"Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "Microsoft YaHei", sans-serif'
COLORS = ("#1f5fa8", "#c8553d", "#2e8b57", "#b8860b", "#6a5acd", "#708090", "#8b4513")
STYLE = Style(
    font_family=FONT,
    background="white",
    plot_background="white",
    foreground="#222",
    foreground_strong="#111",
    foreground_subtle="#888",
    colors=COLORS,
    title_font_size=16,
    label_font_size=12,
    major_label_font_size=12,
    legend_font_size=13,
    value_font_size=11,
)


@dataclass(frozen=True)
class Chart:
    title: str
    alt: str  # what the chart shows, in a sentence
    src: str  # a data: URL of the SVG
    headers: list[str]  # the same figures as a table: column heads...
    rows: list[list[Any]]  # ...and rows


def _no_script(root: Any) -> Any:
    """pygal adds a script (for tooltips) to every drawing: an image never runs it, and
    nothing of ours should carry one."""
    for parent in root.iter():
        for child in list(parent):
            if isinstance(child.tag, str) and child.tag.rsplit("}", 1)[-1] == "script":
                parent.remove(child)
    return root


def _config(title: str, **options: Any) -> dict[str, Any]:
    return {
        "title": title,
        "style": STYLE,
        "js": [],
        "width": 800,
        "height": 320,
        "disable_xml_declaration": True,
        "legend_at_bottom": True,
        "legend_at_bottom_columns": 6,
        "print_values": False,
        "show_minor_x_labels": True,
        "truncate_legend": 40,
        "truncate_label": 30,
        **options,
    }


def _whole(top: int) -> dict[str, Any]:
    """A count's axis: whole numbers only (pygal would mark 0.2, 0.4... for small counts)."""
    if top > 10:
        return {}
    return {"y_labels": list(range(top + 1)), "range": (0, max(top, 1))}


def _src(chart: Any) -> str:
    chart.add_xml_filter(_no_script)
    svg = chart.render(is_unicode=True)
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()


def stacked(
    title: str,
    alt: str,
    labels: list[str],
    series: dict[str, list[int]],
    *,
    key: str,
    sparse: int = 1,
) -> Chart:
    """Columns per label, stacked by series (received per day or week, by channel)."""
    top = max((sum(column) for column in zip(*series.values(), strict=True)), default=0)
    chart = pygal.StackedBar(
        **_config(title, x_label_rotation=-45 if len(labels) > 12 else 0, **_whole(top))
    )
    chart.x_labels = labels
    if sparse > 1:
        chart.x_labels_major = labels[::sparse]
        chart.show_minor_x_labels = False
    for name, values in series.items():
        chart.add(name, values)
    headers = [key, *series]
    rows = [[label, *(values[i] for values in series.values())] for i, label in enumerate(labels)]
    return Chart(title, alt, _src(chart), headers, rows)


def lines(
    title: str, alt: str, labels: list[str], series: dict[str, list[float | None]], *, key: str
) -> Chart:
    """Percentages over time (the three rates): a gap where a rate has no denominator."""
    chart = pygal.Line(
        **_config(
            title,
            range=(0, 100),
            include_x_axis=True,
            allow_interruptions=True,
            value_formatter=lambda v: f"{v:.0f}%",
            dots_size=3,
        )
    )
    chart.x_labels = labels
    for name, values in series.items():
        chart.add(name, values)
    headers = [key, *series]
    rows = [
        [label, *("—" if v[i] is None else f"{v[i]:.1f}%" for v in series.values())]
        for i, label in enumerate(labels)
    ]
    return Chart(title, alt, _src(chart), headers, rows)


def bars(title: str, alt: str, items: list[tuple[str, int]], *, key: str) -> Chart:
    """One horizontal bar per item (cases per department or per member), largest first."""
    height = max(160, 60 + 28 * len(items))
    top = max((value for _, value in items), default=0)
    chart = pygal.HorizontalBar(**_config(title, height=height, show_legend=False,
                                          print_values=True, **_whole(top)))  # fmt: skip
    chart.x_labels = [name for name, _ in reversed(items)]
    chart.add(title, [value for _, value in reversed(items)])
    return Chart(title, alt, _src(chart), [key, title], [[n, v] for n, v in items])
