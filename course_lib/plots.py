"""Figures that several chapters draw: the SA-RA trade-off plot, certified-accuracy curves, image grids.

Each function draws into a matplotlib ``Axes`` (or a region of a ``Figure``) that the caller owns, labels its
axes and sets a title, and returns what it drew on, so a chapter can add to it. Accuracies are fractions in
[0, 1] and are shown in percent.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure


def trade_off_plot(ax: Axes, points: Mapping[str, tuple[float, float]], curve: Sequence[str] = (),
                   highlight: str | None = None, title: str = "clean vs robust accuracy",
                   robust_label: str = "robust accuracy (%)", curve_label: str = "sweep",
                   annotate: Sequence[str] | None = None) -> Axes:
    """The SA-RA plane: one marker per model at (robust accuracy, clean accuracy), ``points[name] = (ra, sa)``.

    The models named in ``curve`` are joined by a line in that order (a sweep, e.g. TRADES' beta or a mixing
    weight, legend entry ``curve_label``) and named next to their markers (only those in ``annotate``, if given:
    points that nearly coincide otherwise print over each other); ``highlight`` circles one model in red (the
    slider's current position).
    """
    markers = "sD^vPXp*<>h"
    if curve:
        ra, sa = zip(*(points[name] for name in curve))
        ax.plot(100 * np.array(ra), 100 * np.array(sa), "o-", color="tab:blue", label=curve_label)
        for name in curve if annotate is None else annotate:
            r, s = points[name]
            ax.annotate(name, (100 * r, 100 * s), textcoords="offset points", xytext=(4, 4), fontsize=6)
    others = [name for name in points if name not in curve]
    for name, marker in zip(others, markers * (len(others) // len(markers) + 1)):
        r, s = points[name]
        ax.plot(100 * r, 100 * s, marker, label=name)
    if highlight is not None:
        r, s = points[highlight]
        ax.plot(100 * r, 100 * s, "o", ms=14, mfc="none", mec="red", mew=2)
    ax.set(xlabel=robust_label, ylabel="clean accuracy (%)", title=title)
    ax.legend(fontsize=6, loc="lower left")
    return ax


def certified_accuracy_plot(ax: Axes, radii: Sequence[float], curves: Mapping[str, Sequence[float]],
                            caps: Mapping[str, float] | None = None,
                            title: str = "approximate certified accuracy",
                            xlabel: str = "radius r (l2, pixel units)") -> Axes:
    """Certified accuracy against radius, one line per entry of ``curves``; ``caps[label]`` draws a dotted
    vertical line in the same colour (e.g. the largest radius the sample size can certify)."""
    for label, curve in curves.items():
        (line,) = ax.plot(radii, curve, label=label)
        if caps is not None and label in caps:
            ax.axvline(caps[label], color=line.get_color(), ls=":", lw=1)
    ax.set(xlabel=xlabel, ylabel="certified accuracy", title=title, ylim=(0, 1.02))
    ax.legend(fontsize=8)
    return ax


def image_grid(fig: Figure, images: torch.Tensor, titles: Sequence[str], rect: tuple[float, float, float, float],
               ncols: int, colors: Sequence[str] | None = None, fontsize: int = 7) -> list[Axes]:
    """Images ``N x C x H x W`` in [0, 1] as a grid of ``ncols`` columns inside ``rect`` = (left, bottom, width,
    height) of ``fig`` (figure fractions), each with its title (in ``colors[i]``, e.g. green right / red wrong)."""
    if len(titles) != len(images):
        raise ValueError(f"need one title per image, got {len(titles)} titles for {len(images)} images")
    left, bottom, width, height = rect
    nrows = -(-len(images) // ncols)
    cell_w, cell_h = width / ncols, height / nrows
    axes = []
    for i, image in enumerate(images.detach().cpu()):
        row, col = divmod(i, ncols)
        ax = fig.add_axes([left + col * cell_w, bottom + (nrows - 1 - row) * cell_h, 0.85 * cell_w, 0.7 * cell_h])
        if image.shape[0] == 1:
            ax.imshow(image[0].numpy(), cmap="gray", vmin=0, vmax=1)
        else:
            ax.imshow(image.permute(1, 2, 0).clamp(0, 1).numpy())
        ax.set_title(titles[i], fontsize=fontsize, color=None if colors is None else colors[i])
        ax.set_xticks([])
        ax.set_yticks([])
        axes.append(ax)
    return axes
