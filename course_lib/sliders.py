"""Sliders that work everywhere: in a live kernel and in the static HTML book.

A :func:`frame_slider` pre-renders one small matplotlib PNG per slider position
and shows them in an :class:`ipywidgets.Stack`.  The slider's ``index`` is tied
to the stack's ``selected_index`` with :func:`ipywidgets.jslink`, a link that
runs in the browser.  The HTML book therefore needs no kernel to move the
slider: myst-nb embeds the saved widget state (the PNG frames included) and the
widget JavaScript replays the link client-side.  In a lecture, the very same
widget works in JupyterLab.  Nothing here blocks or waits for user input, so
headless execution (nbval, the book build) runs straight through.

Keep frames few (about 12) and small (about 80 dpi): every frame is embedded
in the page.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from typing import Any

import ipywidgets as widgets
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

__all__ = ["frame_slider", "render_png"]


def render_png(fig: Figure, dpi: int = 80) -> bytes:
    """Return ``fig`` as PNG bytes at ``dpi`` and close it (so it is not displayed twice)."""
    if not isinstance(fig, Figure):
        raise TypeError(f"expected a matplotlib Figure, got {type(fig).__name__}")
    if dpi <= 0:
        raise ValueError(f"dpi must be positive, got {dpi}")
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=dpi)
    finally:
        plt.close(fig)
    return buffer.getvalue()


def _default_readout(value: Any) -> str:
    """Short label for a slider position: floats in ``%g`` style, anything else via ``str``."""
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def frame_slider(
    values: Sequence,
    render: Callable[[Any], Figure],
    description: str,
    readout: Callable[[Any], str] | None = None,
    dpi: int = 80,
) -> widgets.Widget:
    r"""A slider over pre-rendered figures, one per entry of ``values``.

    Parameters
    ----------
    values:
        The slider positions, in order (e.g. ``[0.0, 0.05, 0.1, 0.2, 0.3]``).
        Non-empty; keep it short (about 12 entries), every frame is embedded in the page.
    render:
        ``render(v)`` returns a fresh :class:`matplotlib.figure.Figure` for value ``v``.
        It is called once per value, at construction time; the figure is saved
        as a PNG at ``dpi`` and closed.
    description:
        Label shown left of the slider; math is written ``\(\varepsilon\)``
        (not ``$...$``, which the widget renderer does not typeset).
    readout:
        ``readout(v)`` gives the text shown right of the slider (default: the value,
        floats in ``%g`` style).  Labels must be distinct.
    dpi:
        Resolution of the PNG frames.

    Returns
    -------
    ipywidgets.VBox
        ``VBox([slider, stack])``: a :class:`ipywidgets.SelectionSlider` whose ``index``
        is jslinked to the ``selected_index`` of an :class:`ipywidgets.Stack` of
        :class:`ipywidgets.Image` frames.  The link object is kept as ``box.link``.
    """
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise TypeError(f"values must be a sequence (list, tuple, range, ...), got {type(values).__name__}")
    if len(values) == 0:
        raise ValueError("values must not be empty: a slider needs at least one position")
    if not callable(render):
        raise TypeError("render must be callable: render(value) -> matplotlib Figure")
    if not isinstance(description, str):
        raise TypeError(f"description must be a string, got {type(description).__name__}")
    if readout is not None and not callable(readout):
        raise TypeError("readout must be callable or None")
    if dpi <= 0:
        raise ValueError(f"dpi must be positive, got {dpi}")

    label_of = readout if readout is not None else _default_readout
    labels = [str(label_of(v)) for v in values]
    if len(set(labels)) != len(labels):
        raise ValueError(f"readout labels must be distinct, got {labels}")

    # Load the backend before plt.ioff() records the interactive state: IPython's inline backend switches
    # interactive mode on when it is first loaded, and ioff() must restore *that* state, or the notebook's
    # later figures would silently stop showing if the first figure of a session was drawn in here.
    plt.close(plt.figure())
    frames = []
    for value in values:
        # ioff: figures created by render() are never shown by an interactive backend;
        # render_png closes each one, so a notebook cell displays only the widget.
        with plt.ioff():
            fig = render(value)
        if not isinstance(fig, Figure):
            raise TypeError(
                f"render({value!r}) returned {type(fig).__name__}, expected a matplotlib Figure "
                "(return the figure, e.g. `fig, ax = plt.subplots(); ...; return fig`)"
            )
        frames.append(widgets.Image(value=render_png(fig, dpi=dpi), format="png"))

    stack = widgets.Stack(children=frames, selected_index=0)
    slider = widgets.SelectionSlider(
        options=list(zip(labels, range(len(values)))),
        index=0,
        description=description,
        continuous_update=True,
        readout=True,
        style={"description_width": "initial"},
        layout=widgets.Layout(width="480px"),
    )
    # Client-side link: runs in the browser, hence also in the static HTML book.
    link = widgets.jslink((slider, "index"), (stack, "selected_index"))
    box = widgets.VBox([slider, stack])
    box.link = link
    return box
