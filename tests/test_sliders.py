"""Tests for course_lib.sliders.frame_slider (the static-HTML-friendly slider)."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")

import ipywidgets as widgets  # noqa: E402
from ipywidgets.widgets.widget_link import Link  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image as PILImage  # noqa: E402

from course_lib.sliders import frame_slider, render_png  # noqa: E402


def _render_line(slope: float) -> matplotlib.figure.Figure:
    fig, ax = plt.subplots(figsize=(3, 2))
    x = np.linspace(0, 1, 20)
    ax.plot(x, slope * x)
    ax.set_ylim(-3, 3)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_title(f"slope {slope:g}")
    return fig


def _pixels(png: bytes) -> np.ndarray:
    return np.asarray(PILImage.open(io.BytesIO(png)).convert("RGB"))


def test_structure_and_one_frame_per_value():
    values = [-2.0, 0.0, 1.5, 3.0]
    box = frame_slider(values, _render_line, r"slope \(a\)")
    assert isinstance(box, widgets.VBox)
    slider, stack = box.children
    assert isinstance(slider, widgets.SelectionSlider)
    assert isinstance(stack, widgets.Stack)
    assert len(stack.children) == len(values)
    assert all(isinstance(c, widgets.Image) and c.format == "png" for c in stack.children)
    assert [label for label, _ in slider.options] == ["-2", "0", "1.5", "3"]
    assert slider.index == 0 and stack.selected_index == 0
    assert slider.description == r"slope \(a\)"


def test_frames_differ_and_are_valid_pngs():
    box = frame_slider([0.0, 1.0, 2.0], _render_line, "a")
    pngs = [bytes(c.value) for c in box.children[1].children]
    assert all(p.startswith(b"\x89PNG\r\n\x1a\n") for p in pngs)
    assert len(set(pngs)) == 3
    # Same figure size for every frame, so the page does not jump while sliding.
    shapes = {_pixels(p).shape for p in pngs}
    assert len(shapes) == 1
    # The pixels really differ (not just PNG metadata).
    a, b = _pixels(pngs[0]).astype(int), _pixels(pngs[2]).astype(int)
    assert np.abs(a - b).sum() > 0


def test_dpi_controls_frame_size():
    small = bytes(frame_slider([1.0], _render_line, "a", dpi=40).children[1].children[0].value)
    large = bytes(frame_slider([1.0], _render_line, "a", dpi=80).children[1].children[0].value)
    h_small, w_small, _ = _pixels(small).shape
    h_large, w_large, _ = _pixels(large).shape
    assert (w_small, h_small) == (120, 80)  # figsize (3, 2) inches at 40 dpi
    assert (w_large, h_large) == (240, 160)


def test_figures_are_closed():
    before = set(plt.get_fignums())
    frame_slider([1, 2, 3], _render_line, "a")
    assert set(plt.get_fignums()) == before


def test_jslink_ties_slider_index_to_stack():
    box = frame_slider([1, 2, 3], _render_line, "a")
    slider, stack = box.children
    link = box.link
    assert isinstance(link, Link)
    assert link.source == (slider, "index")
    assert link.target == (stack, "selected_index")
    # The link is a widget whose state the book embeds: it refers to both models by id.
    state = link.get_state()
    assert state["source"] == [f"IPY_MODEL_{slider.model_id}", "index"]
    assert state["target"] == [f"IPY_MODEL_{stack.model_id}", "selected_index"]


def test_custom_readout():
    box = frame_slider([0.1, 0.2], _render_line, "eps", readout=lambda v: f"eps = {v:.2f}")
    assert [label for label, _ in box.children[0].options] == ["eps = 0.10", "eps = 0.20"]


def test_render_receives_each_value_in_order():
    seen = []

    def render(v):
        seen.append(v)
        return _render_line(float(v))

    frame_slider(range(1, 4), render, "a")
    assert seen == [1, 2, 3]


def test_empty_values_raise():
    with pytest.raises(ValueError, match="empty"):
        frame_slider([], _render_line, "a")


@pytest.mark.parametrize("bad", [None, 3, "abc", {1, 2}])
def test_non_sequence_values_raise(bad):
    with pytest.raises(TypeError, match="sequence"):
        frame_slider(bad, _render_line, "a")


def test_render_must_return_a_figure():
    with pytest.raises(TypeError, match="Figure"):
        frame_slider([1, 2], lambda v: None, "a")
    fig_axes = lambda v: plt.subplots()[1]  # noqa: E731 (returns Axes, a common mistake)
    with pytest.raises(TypeError, match="Figure"):
        frame_slider([1], fig_axes, "a")
    plt.close("all")


def test_render_must_be_callable():
    with pytest.raises(TypeError, match="callable"):
        frame_slider([1], "not a function", "a")


def test_duplicate_readouts_raise():
    with pytest.raises(ValueError, match="distinct"):
        frame_slider([1, 2], _render_line, "a", readout=lambda v: "same")


def test_bad_dpi_raises():
    with pytest.raises(ValueError, match="dpi"):
        frame_slider([1], _render_line, "a", dpi=0)


def test_render_png_rejects_non_figures():
    with pytest.raises(TypeError):
        render_png("figure")


def test_later_figures_still_show_in_a_notebook_kernel(monkeypatch):
    """A slider built before any other figure of the session must not switch the inline backend's display off.

    IPython's inline backend turns interactive mode on when it is first loaded; if that first load happened inside
    frame_slider's plt.ioff(), leaving the context switched interactive mode back *off*, and every later figure of
    the notebook vanished. Runs a real kernel (inline backend) on a two-cell notebook.
    """
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(
            "import matplotlib.pyplot as plt\n"
            "from course_lib.sliders import frame_slider\n"
            "def render(v):\n"
            "    fig, ax = plt.subplots()\n"
            "    ax.plot([0, v])\n"
            "    return fig\n"
            "box = frame_slider([1, 2], render, 'v')"),
        nbformat.v4.new_code_cell("fig, ax = plt.subplots()\nax.plot([1, 2]);"),
    ]
    # the kernel inherits the environment, and the unit tests run with MPLBACKEND=Agg
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    nbclient.NotebookClient(nb, kernel_name="python3", timeout=120).execute()
    assert nb.cells[0].outputs == [], "the slider cell must display nothing by itself (figures closed)"
    shown = [o for o in nb.cells[1].outputs if "image/png" in o.get("data", {})]
    assert len(shown) == 1, "the figure drawn after the slider must be displayed"
