"""The loss-curve picture of a run: training loss by step, validation loss at each validation."""

import io

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from tfllm.training.atomic import atomic_write_bytes


def plot_loss_curve(history, path, title=None):
    """Draws the losses of a `LossHistory.to_dict()` into a PNG at `path` (written atomically).

    The per-step training loss is drawn thin, its running mean over each validation window as dots, and the
    validation loss as a line with markers; the y axis is in nats per token. Uses matplotlib's Agg canvas directly
    (no pyplot, so no global figure state and no display needed).

    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "loss.png")
    >>> plot_loss_curve({"steps": [1, 2, 3], "losses": [3.0, 2.5, 2.2],
    ...                  "epochs": [{"step": 3, "loss": 2.6, "val_loss": 2.4}]}, path)
    >>> open(path, "rb").read(8) == b"\\x89PNG\\r\\n\\x1a\\n"
    True
    """
    figure = Figure(figsize=(7, 4.2), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    steps, losses = np.asarray(history.get("steps", [])), np.asarray(history.get("losses", []), dtype=float)
    if len(steps):
        axes.plot(steps, losses, linewidth=0.8, alpha=0.5, color="tab:blue", label="train loss (each step)")
    epochs = history.get("epochs", [])
    train = [(entry["step"], entry["loss"]) for entry in epochs if entry.get("loss") is not None]
    if train:
        axes.plot(*zip(*train), "o", color="tab:blue", markersize=4, label="train loss (mean since last validation)")
    validation = [(entry["step"], entry["val_loss"]) for entry in epochs if entry.get("val_loss") is not None]
    if validation:
        axes.plot(*zip(*validation), "s-", color="tab:orange", markersize=4, label="validation loss")
    axes.set_xlabel("step")
    axes.set_ylabel("loss (nats per token)")
    if title:
        axes.set_title(title)
    axes.grid(alpha=0.3)
    if len(steps) or validation:
        axes.legend()
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    atomic_write_bytes(path, buffer.getvalue())
