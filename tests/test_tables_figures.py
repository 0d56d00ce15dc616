"""Tables and figures for the page: captions, integers as integers, "—" for missing values,
no cut text; figures saved with the data they show, labels that avoid each other, and a
figure that says why there is nothing to plot."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from privbias_lib.figures import (
    attach,
    label_points,
    nothing_to_show,
    plotted,
    save_figure,
    text_extent,
)
from privbias_lib.tables import fold_constant_columns, readable_number, show


def test_a_shown_table_has_its_caption_integers_dashes_and_wrapped_text():
    frame = pd.DataFrame(
        {
            "seeds": [3.0, 3.0],
            "auc": [0.91234, np.nan],
            "note": ["a " * 60, "b"],
            "params": [134515008.0, 2.0],
        },
        index=pd.Index([0.05, 0.2], name="share"),
    )
    html = show(frame, "A caption").to_html()
    assert "<caption>A caption</caption>" in html
    assert ">3<" in html and ">3.0000<" not in html and ">0.912<" in html
    assert ">—<" in html and "nan" not in html
    assert ">0.05<" in html and "0.050000" not in html  # labels as written
    assert "134,515,008" in html and "…" not in html and "a a a" in html
    assert "white-space: normal" in html


def test_constant_columns_fold_into_the_caption_and_numbers_read():
    frame = pd.DataFrame({"run": ["a", "b"], "delta": [1e-6, 1e-6], "eps": [1.0, 2.0]})
    shown, caption = fold_constant_columns(frame, ["delta", "eps"])
    assert list(shown.columns) == ["run", "eps"] and caption == "delta: 1e-06"
    assert readable_number(134515008.0) == "134,515,008" and readable_number(0.123456) == "0.1235"


def test_a_figure_is_saved_with_the_data_it_shows(tmp_path):
    frame = pd.DataFrame({"x": [1, 2, 3], "y": [0.1, 0.4, 0.2], "g": ["a", "a", "b"]})
    grid = sns.relplot(data=frame, x="x", y="y", hue="g")
    save_figure(grid, tmp_path, "grid.png")
    assert pd.read_csv(tmp_path / "grid.data.csv").equals(frame)  # a grid's own data
    fig, ax = plt.subplots()
    ax.plot(frame.x, frame.y)
    assert plotted(attach(fig, frame.head(2))).equals(frame.head(2))
    save_figure(fig, tmp_path, "fig.png")
    assert (tmp_path / "fig.png").stat().st_size > 1000
    assert len(pd.read_csv(tmp_path / "fig.data.csv")) == 2
    plt.close("all")


def test_labels_of_close_points_do_not_overlap():
    fig, ax = plt.subplots(figsize=(5, 4))
    xs, ys = [3.30, 3.31, 3.32, 2.1, 2.12], [0.0, 0.001, 0.002, 0.1, 0.1]
    names = ["dp_full", "dp_lora", "base", "lora-r2", "lora-r32"]
    ax.scatter(xs, ys)
    label_points(ax, xs, ys, names)
    fig.canvas.draw()
    boxes = [text_extent(t) for t in ax.texts]
    assert len(boxes) == 5
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1 :])
    plt.close(fig)


def test_nothing_to_show_says_why():
    fig = nothing_to_show("no canary in this run")
    assert fig.axes[0].texts[0].get_text() == "no canary in this run"
    assert plotted(fig).iloc[0, 0] == "no canary in this run"
    plt.close(fig)
