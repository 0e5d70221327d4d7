"""The loss curve of a run, as a PNG next to its JSONL log."""
import json
from pathlib import Path

from lightvid.io import atomic_write


def plot_loss_curve(log_path: Path, png_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    records = [json.loads(line) for line in Path(log_path).read_text().splitlines() if line.strip()]
    if not records:
        return
    steps, losses = [r["step"] for r in records], [r["loss"] for r in records]
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    ax.plot(steps, losses, lw=0.8, alpha=0.4, label="loss")
    window = max(1, len(losses) // 20)  # moving average over ~5% of the run
    smooth = [sum(losses[max(0, i - window + 1):i + 1]) / len(losses[max(0, i - window + 1):i + 1])
              for i in range(len(losses))]
    ax.plot(steps, smooth, lw=1.5, label=f"mean of {window}")
    ax.set_xlabel("step")
    ax.set_ylabel("EDM loss (generated frames)")
    ax.set_yscale("log")
    ax.legend()
    fig.tight_layout()
    with atomic_write(png_path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
