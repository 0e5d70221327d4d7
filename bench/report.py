"""Output shared by the bench scripts: a markdown table on stdout and the raw rows as JSON."""
import json
from pathlib import Path

from lightvid.io import atomic_write


def print_table(title: str, header: list[str], cells: list[list[str]]) -> None:
    """A title line, then a markdown table: `header` names the columns, each of `cells` is one row."""
    print(f"\n{title}\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in cells:
        print("| " + " | ".join(row) + " |")


def save_rows(path: Path | None, rows: list[dict]) -> None:
    """Write `rows` as JSON to `path` atomically (nothing when path is None)."""
    if path is not None:
        with atomic_write(path) as tmp:
            Path(tmp).write_text(json.dumps(rows, indent=2))
