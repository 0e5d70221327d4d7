"""The `lightvid` command line (typer). Every user error is one line on stderr and exit code 2 (see errors.py).

    app.py        the typer app and `main` (LightvidError or usage error -> one line, exit 2)
    options.py    the options several commands share (--model, -o/--output, --seed, --steps, ...): one name, one
                  meaning, one help text
    commands.py   generate (SVD folders), flops, train, compress, distill
    tasks.py      animate, interpolate, extend, loop (native models, default: the embedded `photo`)
    restyle.py    restyle (SDEdit over a clip, style weights)
    regions.py    inpaint, cinemagraph (a mask's white region regenerated or animated)
    slowmo.py     slowmo (hierarchical slow motion by recursive frame interpolation)
    edit.py       edit (instruction-guided video editing, Fairy)
    evaluate.py   eval
    web.py        serve: the web app (Gradio), running the tasks of tasks.py through web_tasks.py
"""
from . import commands, edit, evaluate, regions, restyle, slowmo, tasks, web  # noqa: F401  (registers the commands on `app`)
from .app import app, console_main, main, reflow_help

reflow_help(app)

__all__ = ["app", "console_main", "main"]
