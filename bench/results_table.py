"""Print bench/results/<model>_*.json (written by bench/eval_defaults.sh) as markdown tables.

    python bench/results_table.py MODEL
"""
import json
import sys
from pathlib import Path

METRICS = ("psnr", "ssim", "mse_per_frame", "fd_lightvid", "seam_ratio", "seam_levels", "step_levels")

for path in sorted(Path("bench/results").glob(f"{sys.argv[1]}_*.json")):
    report = json.loads(path.read_text())
    if not isinstance(report, dict) or "task" not in report:  # another bench's output (e.g. a table's rows)
        continue
    metrics = [m for m in METRICS if m in report["results"]["model"]]
    print(f"\n**{report['task']}**, {report['clips']} clips, {report['steps']} steps, "
          f"{report['seconds_per_clip']:.2f} s per clip ({path.name})\n")
    print("| method | " + " | ".join(metrics) + " |")
    print("|---" * (len(metrics) + 1) + "|")
    for method, values in report["results"].items():
        print(f"| {method} | " + " | ".join(f"{values[m]:.3f}" if m in values else "" for m in metrics) + " |")
