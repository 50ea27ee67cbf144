"""Plotting helpers for the book: entropies, patch boundaries, patch sizes.

These helpers know nothing about training. They take bytes, entropy
vectors and patch starts (see ``bltlib.patching``) and return figures:

* :func:`plot_entropies` and :func:`plot_patch_histogram` draw on a
  matplotlib ``Axes``;
* :func:`threshold_figure` puts both side by side for one threshold (the
  static figure a book page shows);
* :func:`entropy_threshold_figure` builds a plotly figure with a slider
  over a precomputed grid of thresholds, which stays interactive in a
  static HTML page with no kernel (only plotly steps, no callbacks);
* :func:`threshold_widget` wraps :func:`threshold_figure` in ipywidgets
  sliders for a live kernel.

plotly and ipywidgets are imported lazily, so matplotlib alone suffices
for the first three.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import matplotlib.pyplot as plt
import torch

from bltlib.bytes import as_bytes
from bltlib.patching import entropy_starts, mean_patch_size, starts_to_lengths

if TYPE_CHECKING:  # pragma: no cover
    import plotly.graph_objects as go
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

PATCH_COLORS = ("#4c72b0", "#dd8452")  # alternate colours of patches
BOUNDARY_COLOR = "#333333"
THRESHOLD_COLOR = "#c44e52"
_NAMED = {0x20: "␣", 0x0A: "↵", 0x09: "⇥", 0x0D: "\\r"}


def byte_label(b: int) -> str:
    """A short printable label for one byte value (for tick labels).

    Space, newline and tab get visible symbols; other non-printable or
    non-ASCII bytes are shown as two hex digits.
    """
    if b in _NAMED:
        return _NAMED[b]
    if 0x21 <= b <= 0x7E:
        return chr(b)
    return f"{b:02x}"


def _vector(values: torch.Tensor | Sequence[float]) -> torch.Tensor:
    return torch.as_tensor(values, dtype=torch.float32).flatten().cpu()


def _check_lengths(raw: bytes, e: torch.Tensor,
                   starts: torch.Tensor | None) -> None:
    if e.numel() < len(raw):
        raise ValueError(f"{e.numel()} entropies for {len(raw)} bytes")
    if starts is not None and starts.numel() < len(raw):
        raise ValueError(f"{starts.numel()} starts for {len(raw)} bytes")


def _patch_colors(starts: torch.Tensor) -> list[str]:
    """Alternating colours, one per byte, changing at every patch start."""
    parity = (torch.cumsum(starts.long(), 0) - 1) % 2
    return [PATCH_COLORS[int(p)] for p in parity]


def plot_entropies(data: str | bytes,
                   entropies: torch.Tensor | Sequence[float],
                   starts: torch.Tensor | None = None,
                   threshold: float | None = None, ax: Axes | None = None,
                   title: str | None = None) -> Axes:
    """Bars of per-byte entropy (nats) with the bytes as x tick labels.

    ``entropies[i]`` is H(p(x_i | x_<i)), so bar i is how unsure the
    model was before byte i. Given ``starts`` (bool, one per byte), bars
    alternate colour per patch and a vertical line marks each patch start
    (drawn just left of the byte that opens it); ``threshold`` adds a
    dashed horizontal line. Returns the axes.
    """
    raw = as_bytes(data)
    e = _vector(entropies)
    _check_lengths(raw, e, starts)
    e = e[:len(raw)]
    if ax is None:
        _, ax = plt.subplots(figsize=(max(6.0, 0.13 * len(raw)), 2.8))
    x = range(len(raw))
    colors = (_patch_colors(starts[:len(raw)]) if starts is not None
              else PATCH_COLORS[0])
    ax.bar(x, e.tolist(), width=0.85, color=colors)
    if starts is not None:
        for i in torch.nonzero(starts[:len(raw)]).flatten().tolist():
            ax.axvline(i - 0.5, color=BOUNDARY_COLOR, lw=0.8)
    if threshold is not None:
        ax.axhline(threshold, color=THRESHOLD_COLOR, ls="--", lw=1.2,
                   label=f"θ = {threshold:.2f}")
        ax.legend(loc="upper right", fontsize=8)
    ax.set_xticks(list(x))
    ax.set_xticklabels([byte_label(b) for b in raw], fontsize=7,
                       family="DejaVu Sans Mono")
    ax.set_xlim(-0.7, len(raw) - 0.3)
    ax.set_ylabel("entropy (nats)")
    if title:
        ax.set_title(title)
    return ax


def plot_patch_histogram(lengths_by_name: Mapping[str, Any],
                         ax: Axes | None = None,
                         max_length: int | None = None,
                         y_max: float | None = None) -> Axes:
    """Grouped bars: the fraction of patches of each length, per patcher.

    ``lengths_by_name`` maps a label to patch lengths (a tensor or a
    sequence of ints, e.g. from ``starts_to_lengths``). The legend shows
    each patcher's mean patch size. Lengths above ``max_length`` (default:
    the largest seen, capped at 16) are pooled into the last bar. With
    ``y_max``, taller bars (say, fixed patches' single spike at 1.0) are
    clipped there and labelled with their value.
    """
    if not lengths_by_name:
        raise ValueError("give at least one set of patch lengths")
    lens = {k: torch.as_tensor(v, dtype=torch.long).flatten()
            for k, v in lengths_by_name.items()}
    if any(v.numel() == 0 for v in lens.values()):
        raise ValueError("every patcher needs at least one patch")
    top = max_length or min(16, max(int(v.max()) for v in lens.values()))
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 2.8))
    width = 0.8 / len(lens)
    for k, (name, v) in enumerate(lens.items()):
        counts = torch.bincount(v.clamp(max=top), minlength=top + 1)[1:]
        frac = (counts / v.numel()).tolist()
        pos = [n + 1 + (k - (len(lens) - 1) / 2) * width for n in range(top)]
        shown = frac if y_max is None else [min(f, y_max) for f in frac]
        ax.bar(pos, shown, width=width,
               label=f"{name} (mean {v.float().mean():.2f})")
        for x, f in zip(pos, frac):
            if y_max is not None and f > y_max:
                ax.annotate(f"{f:.2f}", (x, y_max), xytext=(0, -3),
                            textcoords="offset points", rotation=90,
                            ha="center", va="top", fontsize=7,
                            color="white")
    if y_max is not None:
        ax.set_ylim(0, y_max)
    ax.set_xticks(range(1, top + 1))
    ax.set_xlabel("patch length (bytes)")
    ax.set_ylabel("fraction of patches")
    ax.legend(fontsize=8)
    return ax


def threshold_figure(data: str | bytes,
                     entropies: torch.Tensor | Sequence[float],
                     threshold: float, *,
                     max_patch_length: int | None = None,
                     relative_threshold: float | None = None,
                     corpus_entropies: torch.Tensor | None = None,
                     baselines: Mapping[str, Any] | None = None,
                     y_max: float | None = 0.5) -> Figure:
    """Boundaries on a snippet (top) and the patch-size histogram (bottom).

    The histogram uses ``corpus_entropies`` (a longer text) when given,
    else the snippet; ``baselines`` adds other patchers' lengths (e.g.
    fixed or space patches) to it for comparison; ``y_max`` clips the
    histogram (see :func:`plot_patch_histogram`).
    """
    raw = as_bytes(data)
    e = _vector(entropies)[:len(raw)]
    rule = dict(threshold=threshold, relative_threshold=relative_threshold,
                max_patch_length=max_patch_length)
    starts = entropy_starts(e, **rule)
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(max(7.0, 0.12 * len(raw)), 5.6),
        gridspec_kw={"height_ratios": [1.3, 1]})
    plot_entropies(raw, e, starts, threshold, ax=top,
                   title=f"{int(starts.sum())} patches for {len(raw)} bytes,"
                         f" mean {mean_patch_size(starts):.2f} bytes")
    ref = e if corpus_entropies is None else _vector(corpus_entropies)
    lengths = {"entropy": starts_to_lengths(entropy_starts(ref, **rule))}
    lengths.update(baselines or {})
    plot_patch_histogram(lengths, ax=bottom, max_length=max_patch_length,
                         y_max=y_max)
    bottom.set_title(f"patch sizes over {ref.numel():,} bytes")
    fig.tight_layout()
    return fig


def _boundary_xy(starts: torch.Tensor, top: float
                 ) -> tuple[list[float | None], list[float | None]]:
    """One polyline of vertical segments at x = i - 0.5 for every start."""
    xs: list[float | None] = []
    ys: list[float | None] = []
    for i in torch.nonzero(starts).flatten().tolist():
        xs += [i - 0.5, i - 0.5, None]
        ys += [0.0, top, None]
    return xs, ys


def entropy_threshold_figure(data: str | bytes,
                             entropies: torch.Tensor | Sequence[float],
                             thresholds: Sequence[float],
                             max_patch_length: int | None = None, *,
                             relative_threshold: float | None = None,
                             active: int | None = None) -> go.Figure:
    """A plotly figure with one slider step per threshold in ``thresholds``.

    Every step is precomputed: two traces per threshold (entropy bars
    coloured by patch, and the patch-start lines; trace ``2k + 1`` holds
    the starts of threshold ``k`` in its ``customdata``), a threshold line
    and a title with the patch count and mean patch size. Steps only
    toggle visibility, so the slider works in a static HTML page.
    """
    import plotly.graph_objects as go

    raw = as_bytes(data)
    e = _vector(entropies)
    _check_lengths(raw, e, None)
    e = e[:len(raw)]
    grid = [float(t) for t in thresholds]
    if not grid:
        raise ValueError("give at least one threshold")
    active = len(grid) // 2 if active is None else active
    if not 0 <= active < len(grid):
        raise ValueError(f"active step {active} outside 0..{len(grid) - 1}")
    labels = [byte_label(b) for b in raw]
    text = [f"byte {i} {lab!r}: H = {v:.2f} nats"
            for i, (lab, v) in enumerate(zip(labels, e.tolist()))]
    top = max(float(e.max()), max(grid)) * 1.08
    fig = go.Figure()
    titles, shapes = [], []
    for k, theta in enumerate(grid):
        starts = entropy_starts(e, threshold=theta,
                                relative_threshold=relative_threshold,
                                max_patch_length=max_patch_length)
        visible = k == active
        fig.add_trace(go.Bar(
            x=list(range(len(raw))), y=e.tolist(), visible=visible,
            marker_color=_patch_colors(starts), hovertext=text,
            hoverinfo="text", showlegend=False, name=f"θ={theta:.2f}"))
        xs, ys = _boundary_xy(starts, top)
        fig.add_trace(go.Scatter(
            x=xs, y=ys, mode="lines", visible=visible, hoverinfo="skip",
            line={"color": BOUNDARY_COLOR, "width": 1}, showlegend=False,
            customdata=starts.nonzero().flatten().tolist(),
            name=f"starts θ={theta:.2f}"))
        titles.append(f"θ = {theta:.2f} nats: {int(starts.sum())} patches,"
                      f" mean patch size {mean_patch_size(starts):.2f} bytes")
        shapes.append([{"type": "line", "xref": "paper", "x0": 0, "x1": 1,
                        "y0": theta, "y1": theta,
                        "line": {"color": THRESHOLD_COLOR, "dash": "dash"}}])
    steps = []
    for k, theta in enumerate(grid):
        vis = [j // 2 == k for j in range(2 * len(grid))]
        steps.append({"method": "update", "label": f"{theta:.2f}",
                      "args": [{"visible": vis},
                               {"title.text": titles[k],
                                "shapes": shapes[k]}]})
    fig.update_layout(
        title={"text": titles[active]}, shapes=shapes[active],
        bargap=0.15, height=420, margin={"t": 60, "b": 40},
        yaxis={"title": {"text": "entropy (nats)"}, "range": [0, top]},
        xaxis={"tickmode": "array", "tickvals": list(range(len(raw))),
               "ticktext": labels, "tickangle": 0,
               "tickfont": {"family": "monospace", "size": 9}},
        sliders=[{"active": active, "steps": steps, "pad": {"t": 40},
                  "currentvalue": {"prefix": "threshold θ (nats) = "}}])
    return fig


def threshold_widget(data: str | bytes,
                     entropies: torch.Tensor | Sequence[float], *,
                     threshold: float = 1.0, max_patch_length: int = 8,
                     threshold_range: tuple[float, float, float] = (
                         0.0, 4.0, 0.05),
                     corpus_entropies: torch.Tensor | None = None,
                     baselines: Mapping[str, Any] | None = None) -> Any:
    """Sliders for the threshold and the maximum patch length.

    Moving either redraws :func:`threshold_figure`. Needs a live kernel;
    returns an ``ipywidgets.VBox`` (display it, or leave it last in a cell).
    """
    import ipywidgets as widgets
    from IPython.display import display

    lo, hi, step = threshold_range
    theta = widgets.FloatSlider(value=threshold, min=lo, max=hi, step=step,
                                description="θ (nats)",
                                continuous_update=False)
    max_len = widgets.IntSlider(value=max_patch_length, min=2, max=16,
                                description="max length",
                                continuous_update=False)
    out = widgets.Output()

    def redraw(_: Any = None) -> None:
        with out:
            out.clear_output(wait=True)
            fig = threshold_figure(data, entropies, theta.value,
                                   max_patch_length=max_len.value,
                                   corpus_entropies=corpus_entropies,
                                   baselines=baselines)
            display(fig)
            plt.close(fig)

    theta.observe(redraw, names="value")
    max_len.observe(redraw, names="value")
    redraw()
    return widgets.VBox([widgets.HBox([theta, max_len]), out])
