"""The typer app and the entry point that turns every LightvidError into one line on stderr and exit code 2."""
import os
import sys

import typer

from lightvid.errors import LightvidError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="lightvid: fast video diffusion on small hardware (CPU first, offline).")


def check_positive(**values):
    for name, value in values.items():
        if value < 1:
            raise LightvidError(f"--{name.replace('_', '-')} must be a positive integer, got {value}")


def check_seed(seed: int) -> None:
    if not 0 <= seed < 2**63:
        raise LightvidError(f"--seed must be in [0, 2^63), got {seed}")


def main(argv=None) -> int:
    """Entry point: runs the app, turning LightvidError into a one-line message and exit code 2.

    Usage errors (unknown option, non-integer value) are click's: a short usage note, also exit code 2.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # lightvid never downloads
    try:
        app(args=argv, prog_name="lightvid")
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except LightvidError as e:
        typer.echo(f"lightvid: error: {e}", err=True)
        return 2
    return 0


def console_main():
    sys.exit(main())

