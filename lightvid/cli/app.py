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


# The exceptions of the click that typer runs on (newer typer versions vendor their own copy of click).
_click_errors = sys.modules[typer.BadParameter.__module__]


def main(argv=None) -> int:
    """Entry point: runs the app, turning every error into one line on stderr.

    A LightvidError and a usage error (unknown option, missing option, non-numeric value) both print
    `lightvid: error: <message>` and return 2; `lightvid` alone prints the help and returns 2.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # lightvid never downloads
    try:
        result = app(args=argv, prog_name="lightvid", standalone_mode=False)
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except LightvidError as e:
        typer.echo(f"lightvid: error: {e}", err=True)
        return 2
    except _click_errors.ClickException as e:
        message = e.format_message()
        if type(e).__name__ == "NoArgsIsHelpError":  # no command: the message is the help (rich printed it already)
            if message:
                typer.echo(message, err=True)
            return e.exit_code
        ctx = getattr(e, "ctx", None)
        hint = f" (see `{ctx.command_path} --help`)" if isinstance(e, _click_errors.UsageError) and ctx else ""
        typer.echo(f"lightvid: error: {' '.join(message.split())}{hint}", err=True)
        return e.exit_code
    except typer.Abort:
        typer.echo("lightvid: aborted", err=True)
        return 1
    return result if isinstance(result, int) else 0


def console_main():
    sys.exit(main())

