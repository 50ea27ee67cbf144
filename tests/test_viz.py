"""Figures build, and the plotly slider shows the library's patch starts."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from bltlib import viz  # noqa: E402
from bltlib.patching import (entropy_starts, fixed_starts,  # noqa: E402
                             starts_to_lengths)

DATA = b"def f(x):\n    return x + 1\n"
E = torch.linspace(0.1, 3.0, len(DATA)).roll(7) * (
    1 + 0.5 * torch.sin(torch.arange(len(DATA)) * 1.7))


def test_byte_label():
    assert viz.byte_label(ord("a")) == "a"
    assert viz.byte_label(0x20) == "␣"
    assert viz.byte_label(0x0A) == "↵"
    assert viz.byte_label(0xC3) == "c3"


def test_plot_entropies_draws_one_bar_per_byte_and_boundaries():
    starts = entropy_starts(E, threshold=1.5, max_patch_length=6)
    ax = viz.plot_entropies(DATA, E, starts, threshold=1.5)
    assert len(ax.patches) == len(DATA)
    assert len(ax.get_xticklabels()) == len(DATA)
    vlines = [ln.get_xdata()[0] for ln in ax.lines
              if ln.get_xdata()[0] == ln.get_xdata()[1]]
    assert vlines == [i - 0.5 for i in starts.nonzero().flatten().tolist()]
    plt.close(ax.figure)


def test_plot_entropies_rejects_short_entropies():
    with pytest.raises(ValueError):
        viz.plot_entropies(DATA, E[:5])


def test_plot_patch_histogram_and_threshold_figure():
    lengths = {"fixed": starts_to_lengths(fixed_starts(len(DATA), 4)),
               "entropy": [1, 2, 3, 8, 9]}
    ax = viz.plot_patch_histogram(lengths, max_length=8)
    assert len(ax.patches) == 2 * 8
    heights = [p.get_height() for p in ax.patches]
    assert abs(sum(heights) - 2.0) < 1e-6  # fractions per patcher
    plt.close(ax.figure)
    ax = viz.plot_patch_histogram(lengths, max_length=8, y_max=0.5)
    assert max(p.get_height() for p in ax.patches) <= 0.5
    assert ax.get_ylim()[1] == 0.5
    plt.close(ax.figure)
    fig = viz.threshold_figure(DATA, E, 1.0, max_patch_length=8,
                               baselines={"fixed": lengths["fixed"]})
    assert len(fig.axes) == 2
    plt.close(fig)
    with pytest.raises(ValueError):
        viz.plot_patch_histogram({})


def test_slider_has_one_step_per_threshold_matching_entropy_starts():
    grid = [0.25 * k for k in range(14)]
    fig = viz.entropy_threshold_figure(DATA, E, grid, max_patch_length=5)
    steps = fig.layout.sliders[0].steps
    assert len(steps) == len(grid)
    assert len(fig.data) == 2 * len(grid)
    for k, (theta, step) in enumerate(zip(grid, steps)):
        visible = step.args[0]["visible"]
        shown = [j for j, v in enumerate(visible) if v]
        assert shown == [2 * k, 2 * k + 1]
        want = entropy_starts(E, threshold=theta, max_patch_length=5)
        got = torch.zeros(len(DATA), dtype=torch.bool)
        got[list(fig.data[2 * k + 1].customdata)] = True
        assert torch.equal(got, want)
        # the boundary lines sit just left of each starting byte
        xs = [x for x in fig.data[2 * k + 1].x if x is not None]
        assert sorted(set(xs)) == [i - 0.5 for i in want.nonzero().flatten()
                                   .tolist()]
        assert f"{int(want.sum())} patches" in step.args[1]["title.text"]
    assert fig.layout.sliders[0].active == len(grid) // 2


def test_slider_figure_serialises_without_python_callbacks():
    fig = viz.entropy_threshold_figure(DATA, E, [0.5, 1.0], active=0)
    html = fig.to_html(include_plotlyjs=False, full_html=False)
    assert "sliders" in html
    with pytest.raises(ValueError):
        viz.entropy_threshold_figure(DATA, E, [])


def test_threshold_widget_builds():
    pytest.importorskip("ipywidgets")
    w = viz.threshold_widget(DATA, E, threshold=1.0, max_patch_length=6)
    theta, max_len = w.children[0].children
    theta.value = 2.0
    max_len.value = 4
    plt.close("all")
