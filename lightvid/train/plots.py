"""The loss curve of a run, as a PNG next to its JSONL log."""
import json
from pathlib import Path

from lightvid.io import atomic_write


def _records(log_path: Path) -> list[dict]:
    """The log's complete records with a step and a loss (no log: none; a line cut short by a kill is skipped)."""
    try:
        lines = log_path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return []
    records = []
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and "step" in record and "loss" in record:
            records.append(record)
    return records


def plot_loss_curve(log_path: Path, png_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    records = _records(Path(log_path))
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
