"""`lightvid serve`: the web app (Gradio). A tab for each of animate, interpolate, extend, loop, restyle, inpaint and
cinemagraph, a model
picker, seed, steps, runtime and window mode; each request runs the CLI's own command function (web_tasks.py), so a
result equals the CLI's for the same seed. One queue for every tab, `--concurrency` requests sampling at a time
(sampling uses every core).

Offline and private by default: it listens on 127.0.0.1, makes no share link, sends no analytics and loads
nothing from outside (the page's fonts and scripts come from the gradio package). Gradio is imported inside the
functions, so that `lightvid --help` stays fast.
"""
import math
import os
import socket
import time
from pathlib import Path
from typing import Annotated

import typer

from lightvid.errors import LightvidError

from .app import app, check_range
from .options import MAX_FRAMES, MAX_STEPS
from .web_tasks import MAX_WEB_SEED, RUNTIMES, WINDOW_MODES, Limits, ModelInfo, WebTasks, find_models

MAX_CONCURRENCY, MAX_QUEUE, MAX_UPLOAD_MB = 64, 1000, 1024
CLI_MEGAPIXELS = 50  # lightvid.io.MAX_IMAGE_PIXELS: the CLI's command functions refuse larger frames anyway
CACHE_SECONDS = 3600  # gradio deletes its copies of uploads and results after an hour (checked hourly)

# (task, tab title, what it does, its uploads as (kind, label), its number field (a frame count, restyle's
# strength, or None: inpaint has none) and that field's help). The page's number fields cannot be empty (a cleared
# one sends 0), so 0 stands for the model's default frame count.
TABS = [
    ("animate", "Animate", "The photo is the first frame; the model makes the motion that follows.",
     [("image", "Photo")], "Frames", "2 to {frames}; 0: the model's window (longer videos: as Windows says)"),
    ("interpolate", "Interpolate", "In-between frames from the first frame to the last (both ends included).",
     [("image", "First frame"), ("image", "Last frame")], "Frames", "3 to the model's window (to {frames} with "
     "Windows multidiffusion); 0: the window"),
    ("extend", "Extend", "The video, resampled to the model's frame rate and size, then new frames.",
     [("video", "Video")], "New frames", "the video's frames and the new ones: at most {frames} in all; 0: half the "
     "model's window"),
    ("loop", "Loop", "A seamless loop: played on repeat, the last frame leads back to the first.",
     [("image", "First frame")], "Frames", "one period: 3 to {loop_frames}; 0: the model's window - 1 (longer "
     "periods: as Windows says for the way out, multidiffusion for the way back)"),
    ("restyle", "Restyle", "The video redrawn by the model (SDEdit): noised to Strength, denoised with nothing "
     "given.", [("video", "Video")], "Strength", "more than 0, at most 1: how much is redrawn (1: everything)"),
    ("inpaint", "Inpaint", "The mask's white region regenerated in every frame; every other pixel is the video's, "
     "at its own frame rate. The mask (white = regenerate, black = keep) has the video's frame size.",
     [("video", "Video"), ("image", "Mask")], None, None),
    ("cinemagraph", "Cinemagraph", "Only the mask's white region of the photo moves; every other pixel stays the "
     "photo's. The mask (white = animate, black = keep) has the photo's size.",
     [("image", "Photo"), ("image", "Mask")], "Frames", "2 to {frames}; 0: the model's window"),
]
FIELD_DEFAULTS = {"restyle": 0.5}  # the number field's value when the page opens (0 for the frame counts)


def build_app(models: dict[str, ModelInfo] | None = None, limits: Limits = Limits(), concurrency: int = 1,
              queue_size: int = 16):
    """The app (a gr.Blocks, queued, not launched): `models` by label (web_tasks.find_models; default: the
    embedded ones), `limits` per request, `concurrency` requests sampling at a time, `queue_size` waiting."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # no telemetry, no version check (gradio reads it on import)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gradio as gr

    models = models if models is not None else find_models([])
    with gr.Blocks(title="lightvid", analytics_enabled=False, delete_cache=(CACHE_SECONDS, CACHE_SECONDS)) as demo:
        gr.Markdown(f"# lightvid\nFast video diffusion on a CPU. Uploads: at most {limits.upload_mb} MB a file, "
                    f"images and video frames at most {limits.megapixels:g} megapixels; results at most "
                    f"{limits.frames} frames.")
        with gr.Row():
            model = gr.Dropdown([(f"{label} ({info.describe()})", label) for label, info in models.items()],
                                value=next(iter(models)), label="Model", elem_id="model")
            seed = gr.Number(0, precision=0, label="Seed", elem_id="seed",
                             info=f"0 to {MAX_WEB_SEED}: the same seed gives the same video as the CLI")
            steps = gr.Number(0, precision=0, label="Steps", elem_id="steps",
                              info=f"1 to {limits.steps}; 0: the model's own")
            runtime = gr.Radio(list(RUNTIMES), value=RUNTIMES[0], label="Runtime", elem_id="runtime",
                               info="torch: the exact reference; onnx / executorch: onnxruntime / the ExecuTorch "
                               "runtime, where the model folder holds that export (`lightvid export`)")
            windows = gr.Radio(list(WINDOW_MODES), value=WINDOW_MODES[0], label="Windows", elem_id="windows",
                               info="beyond the model's window: chain (each window continues the last) or "
                               "multidiffusion (all windows at once, averaged every step)")
        with gr.Tabs():
            for task, title, about, uploads, frames_label, frames_help in TABS:
                with gr.Tab(title, id=task):
                    gr.Markdown(about)
                    with gr.Row():
                        with gr.Column():
                            files = [_upload(gr, kind, label, f"{task}-input-{i}")
                                     for i, (kind, label) in enumerate(uploads)]
                            frames = gr.Number(FIELD_DEFAULTS.get(task, 0), precision=None if task == "restyle"
                                               else 0, label=frames_label, elem_id=f"{task}-frames",
                                               visible=frames_label is not None,
                                               info=(frames_help or "").format(frames=limits.frames,
                                                                               loop_frames=limits.frames - 1))
                            button = gr.Button(title, variant="primary", elem_id=f"{task}-run")
                        with gr.Column():  # element ids: for the browser tests
                            video = gr.Video(label="Result", interactive=False, autoplay=True, loop=True,
                                             elem_id=f"{task}-result")
                            download = gr.File(label="Download (mp4)", interactive=False, elem_id=f"{task}-download")
                    # every result is copied into gradio's cache by the output video before its folder goes
                    web = WebTasks(models, limits, keep=video.move_resource_to_block_cache)
                    button.click(_handler(task, web, gr), [*files, model, frames, seed, steps, runtime, windows],
                                 [video, download], api_name=task, concurrency_limit=concurrency,
                                 concurrency_id="sampling")  # one limit shared by the tabs
    return demo.queue(max_size=queue_size, default_concurrency_limit=concurrency)


def _upload(gr, kind: str, label: str, elem_id: str):
    if kind == "video":
        # no `format`: gradio hands over the uploaded file as it is (a format would convert it with ffmpeg)
        return gr.Video(label=label, sources=["upload"], include_audio=True, elem_id=elem_id)
    image = gr.Image(label=label, sources=["upload"], type="filepath", elem_id=elem_id)
    # gr.Image's own preprocessing opens the file with Pillow first, where a file that is no image, or one of over
    # 179 megapixels, fails with Pillow's words; web_tasks checks it as the CLI does and names the limit. Replaced
    # on the instance: gradio writes a .pyi stub next to the source of any subclass of its components.
    image.preprocess = _uploaded_file
    return image


def _uploaded_file(payload):
    """An upload's path in gradio's upload folder, the file untouched (gradio checked it is an upload)."""
    return None if payload is None else payload.path


def _handler(task: str, web: WebTasks, gr):
    """The function a tab's button runs, returning the result twice (preview, download). Gradio passes the inputs
    positionally and finds the progress tracker among the default arguments, so each task has explicit ones."""
    progress = gr.Progress(track_tqdm=True)  # the samplers' tqdm bars become the page's progress bar

    def animate(image, model, frames, seed, steps, runtime, windows, progress=progress):
        return (web.animate(image, model, frames, seed, steps, runtime, windows),) * 2

    def interpolate(first, last, model, frames, seed, steps, runtime, windows, progress=progress):
        return (web.interpolate(first, last, model, frames, seed, steps, runtime, windows),) * 2

    def extend(video, model, new_frames, seed, steps, runtime, windows, progress=progress):
        return (web.extend(video, model, new_frames, seed, steps, runtime, windows),) * 2

    def loop(image, model, frames, seed, steps, runtime, windows, progress=progress):
        return (web.loop(image, model, frames, seed, steps, runtime, windows),) * 2

    def restyle(video, model, strength, seed, steps, runtime, windows, progress=progress):  # always multidiffusion
        return (web.restyle(video, model, strength, seed, steps, runtime),) * 2

    def inpaint(video, mask, model, unused, seed, steps, runtime, windows, progress=progress):  # multidiffusion
        return (web.inpaint(video, mask, model, seed, steps, runtime),) * 2

    def cinemagraph(image, mask, model, frames, seed, steps, runtime, windows, progress=progress):
        return (web.cinemagraph(image, mask, model, frames, seed, steps, runtime),) * 2

    return {"animate": animate, "interpolate": interpolate, "extend": extend, "loop": loop, "restyle": restyle,
            "inpaint": inpaint, "cinemagraph": cinemagraph}[task]


def launch(demo, host: str = "127.0.0.1", port: int = 7860, upload_mb: int = Limits.upload_mb) -> None:
    """Start serving `demo` in the background (demo.close() stops it): no share link, no server-side rendering
    (it would start Node), no MCP server, no monitoring page; gradio refuses larger uploads with a message."""
    demo.launch(server_name=host, server_port=port, share=False, max_file_size=f"{upload_mb}mb",
                prevent_thread_lock=True, quiet=True, show_error=False, inbrowser=False, ssr_mode=False, pwa=False,
                mcp_server=False, enable_monitoring=False, footer_links=["api", "settings"])


@app.command()
def serve(host: Annotated[str, typer.Option(help="The address to listen on. 127.0.0.1 (the default): this machine "
                                            "only; 0.0.0.0: every network the machine is on (anyone who reaches "
                                            "it can use the app: there is no login).")] = "127.0.0.1",
          port: Annotated[int, typer.Option(help="The port to listen on, 1 to 65535.")] = 7860,
          models: Annotated[list[Path] | None, typer.Option(
              "--models", metavar="DIR", help="A local model folder (one with pipeline.json), or a folder of model "
              "folders, to offer beside the embedded models; repeat for more. Web users pick models from this list "
              "only: they never type a path.")] = None,
          concurrency: Annotated[int, typer.Option(help="Requests run at the same time, 1 to "
                                                   f"{MAX_CONCURRENCY}, in threads. Sampling uses every core, "
                                                   "so more helps where requests spend time outside the network "
                                                   "(small models), at the cost of memory: bench/load_app.py "
                                                   "--concurrency N measures it.")] = 1,
          queue_size: Annotated[int, typer.Option(help="Requests that may wait for their turn, 1 to "
                                                  f"{MAX_QUEUE}; beyond them the page says the app is busy.")] = 16,
          max_upload_mb: Annotated[int, typer.Option(help="Largest upload in MB, 1 to "
                                                     f"{MAX_UPLOAD_MB}.")] = Limits.upload_mb,
          max_megapixels: Annotated[float, typer.Option(help="Largest uploaded image (or video frame) in "
                                                        f"megapixels, up to {CLI_MEGAPIXELS}.")] = Limits.megapixels,
          max_frames: Annotated[int, typer.Option(help="Most frames of a result video (an extended video counts "
                                                  f"whole), 3 to {MAX_FRAMES}.")] = Limits.frames,
          max_steps: Annotated[int, typer.Option(help="Most sampling steps of a request (given, or a model's "
                                                 f"default), 1 to {MAX_STEPS}.")] = Limits.steps):
    """Serve the web app: animate, interpolate, extend, loop, restyle, inpaint and cinemagraph in the browser, with the
    embedded models and the --models folders. Results equal the CLI's for the same seed. Ctrl-C stops it."""
    check_range("--port", port, 1, 65535)
    check_range("--concurrency", concurrency, 1, MAX_CONCURRENCY)
    check_range("--queue-size", queue_size, 1, MAX_QUEUE)
    check_range("--max-upload-mb", max_upload_mb, 1, MAX_UPLOAD_MB)
    check_range("--max-frames", max_frames, 3, MAX_FRAMES)
    check_range("--max-steps", max_steps, 1, MAX_STEPS)
    if not (math.isfinite(max_megapixels) and 0 < max_megapixels <= CLI_MEGAPIXELS):
        raise LightvidError(f"--max-megapixels must be above 0 and at most {CLI_MEGAPIXELS}, got {max_megapixels}")
    limits = Limits(frames=max_frames, steps=max_steps, megapixels=max_megapixels, upload_mb=max_upload_mb)
    catalogue = find_models(models or [])
    _check_listen(host, port)
    if host not in ("127.0.0.1", "localhost", "::1"):
        typer.echo(f"lightvid: listening on {host}: anyone who can reach this machine can use the app", err=True)
    demo = build_app(catalogue, limits, concurrency, queue_size)
    launch(demo, host, port, max_upload_mb)
    typer.echo(f"lightvid: serving on http://{host}:{port} ({', '.join(catalogue)}); Ctrl-C stops", err=True)
    try:
        while demo.is_running:
            time.sleep(0.2)
    finally:  # Ctrl-C: close the server, then main prints `lightvid: interrupted` and exits with 130
        demo.close(verbose=False)


def _check_listen(host: str, port: int) -> None:
    """A one-line error, before gradio starts, when `host` is no address of this machine or `port` is taken."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except (socket.gaierror, UnicodeError) as e:
        raise LightvidError(f"--host {host}: not an address ({getattr(e, 'strerror', None) or e})") from None
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server will: a closed port's
        try:                                                           # TIME_WAIT does not count as taken
            probe.bind(address)
        except OSError as e:
            raise LightvidError(f"--port {port}: cannot listen on {host}:{port} ({e.strerror})") from None
