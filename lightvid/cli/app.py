"""The typer app, the entry point that turns every LightvidError into one line on stderr and exit code 2 (and
Ctrl-C into one line and exit code 130), and the option checks every command runs before any work."""
import inspect
import math
import os
import sys

import typer

from lightvid.errors import LightvidError

from .options import (
    MAX_FRAME_PIXELS,
    MAX_FRAMES,
    MAX_SIDE,
    MAX_STEPS,
    MAX_VIDEO_PIXELS,
    SEED_LIMIT,
    SLOW_CLIPS,
    SLOW_FRAMES,
    SLOW_STEPS,
)

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="lightvid: fast video diffusion on small hardware (CPU first, offline).")


def check_seed(seed: int) -> None:
    if not 0 <= seed < SEED_LIMIT:
        raise LightvidError(f"--seed must be in [0, 2^63), got {seed}")


def check_range(option: str, value, low, high) -> None:
    """`option` (e.g. "--steps") must be in [low, high]; None (not given) passes."""
    if value is not None and not low <= value <= high:
        raise LightvidError(f"{option} must be in [{_number(low)}, {_number(high)}], got {value}")


def _number(n: int) -> str:
    return f"{n:,}" if abs(n) >= 10_000 else str(n)


def check_finite(**values) -> None:
    for name, value in values.items():
        if value is not None and not math.isfinite(value):
            raise LightvidError(f"--{name.replace('_', '-')} must be a finite number, got {value}")


def check_size(height: int | None = None, width: int | None = None, frames: int | None = None,
               steps: int | None = None) -> None:
    """The sampling limits (options.py) on whichever values are known; None = not given (yet).

    Called before a model loads with the values given, and again with the model's defaults filled in."""
    check_range("--steps", steps, 1, MAX_STEPS)
    check_range("--frames", frames, 1, MAX_FRAMES)
    check_range("--height", height, 1, MAX_SIDE)
    check_range("--width", width, 1, MAX_SIDE)
    if height is not None and width is not None:
        if height * width > MAX_FRAME_PIXELS:
            raise LightvidError(f"--height x --width must be at most {MAX_FRAME_PIXELS:,} pixels, got "
                                f"{height}x{width} = {height * width:,}")
        if frames is not None and frames * height * width > MAX_VIDEO_PIXELS:
            raise LightvidError(f"frames x height x width must be at most {MAX_VIDEO_PIXELS:,} pixels, got "
                                f"{frames}x{height}x{width} = {frames * height * width:,}")


def warn_slow(**values) -> None:
    """One line on stderr for legal but slow settings (steps, frames, clips): the command then goes on."""
    limits = dict(steps=SLOW_STEPS, frames=SLOW_FRAMES, new_frames=SLOW_FRAMES, clips=SLOW_CLIPS)
    slow = [f"--{name.replace('_', '-')} {value} (more than {limits[name]})" for name, value in values.items()
            if value is not None and value > limits[name]]
    if slow:
        typer.echo(f"lightvid: this will take long: {', '.join(slow)}", err=True)


def reflowed(doc: str) -> str:
    """A docstring's paragraphs each on one line (typer keeps the source's line breaks after the first paragraph);
    a paragraph with an indented or bulleted line is left as it is."""
    paragraphs = inspect.cleandoc(doc).split("\n\n")
    keep = [any(line[:1].isspace() or line.lstrip().startswith(("-", "*")) for line in p.splitlines())
            for p in paragraphs]
    return "\n\n".join(p if k else " ".join(p.split("\n")) for p, k in zip(paragraphs, keep))


def reflow_help(typer_app: typer.Typer) -> None:
    """Give every registered command its docstring reflowed (see `reflowed`) as its help."""
    for command in typer_app.registered_commands:
        if command.help is None and command.callback is not None and command.callback.__doc__:
            command.help = reflowed(command.callback.__doc__)


# The exceptions of the click that typer runs on (newer typer versions vendor their own copy of click).
_click_errors = sys.modules[typer.BadParameter.__module__]


def main(argv=None) -> int:
    """Entry point: runs the app, turning every error into one line on stderr.

    A LightvidError and a usage error (unknown option, missing option, non-numeric value) both print
    `lightvid: error: <message>` and return 2; `lightvid` alone prints the help and returns 2. Ctrl-C
    (KeyboardInterrupt) prints `lightvid: interrupted` and returns 130 (128 + SIGINT), re-raising nothing.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # lightvid never downloads
    try:
        result = app(args=argv, prog_name="lightvid", standalone_mode=False)
    except KeyboardInterrupt:
        return _interrupted()
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except LightvidError as e:
        typer.echo(f"lightvid: error: {_one_line(str(e))}", err=True)
        return 2
    except OSError as e:  # the system refused a read or write the checks could not foresee (disk full, I/O error)
        where = f"{e.filename}: " if e.filename else ""
        typer.echo(f"lightvid: error: {_one_line(where + (e.strerror or str(e)))}", err=True)
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
    except typer.Abort as e:
        if isinstance(e.__context__, KeyboardInterrupt):  # click's own mapping of Ctrl-C
            return _interrupted()
        typer.echo("lightvid: aborted", err=True)
        return 1
    if result == INTERRUPTED:  # typer maps a KeyboardInterrupt in a command to Exit(130), returned as is
        return _interrupted()
    return result if isinstance(result, int) else 0


INTERRUPTED = 130  # 128 + SIGINT, the shell's code for a process ended by Ctrl-C


def _one_line(message: str) -> str:
    """A message with line breaks (a path that holds one, say) escaped, so that it stays one line."""
    return message.replace("\r", "\\r").replace("\n", "\\n")


def _interrupted() -> int:
    try:
        typer.echo("lightvid: interrupted", err=True)
    except (KeyboardInterrupt, OSError):  # a second Ctrl-C or a closed stderr: the exit code says it
        pass
    return INTERRUPTED


def console_main():
    sys.exit(main())

