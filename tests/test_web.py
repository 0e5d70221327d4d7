"""`lightvid serve`, the web app: the handlers without a browser (catalogue, limits, one-line errors, results equal
to the CLI's), `serve`'s option errors and Ctrl-C, and the page itself in Debian's Chromium driven by Playwright
(an upload animated into a playable video, a too-large upload refused with the limit, no request leaving the
machine). The app runs in-process on 127.0.0.1 with a free port; a tiny random model keeps sampling quick."""
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
from cli_run import run
from PIL import Image

from lightvid.cli.web import build_app, launch
from lightvid.cli.web_tasks import Limits, WebTasks, find_models
from lightvid.io import read_video_uint8, write_video
from lightvid.weights import EMBEDDED
from native_fixtures import save_tiny_native

# gradio's queue calls pandas in ways pandas 3 deprecates: its warnings, not ours
pytestmark = pytest.mark.filterwarnings("ignore:.*(no_silent_downcasting|copy keyword is deprecated).*")
ROOT = Path(__file__).parent.parent
ROCKET = ROOT / "examples" / "rocket.jpg"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    """A --models folder holding two model folders (tiny random: window 5, 16x16, patch 2, 2 steps)."""
    root = tmp_path_factory.mktemp("models")
    save_tiny_native(root / "tiny")
    save_tiny_native(root / "photo", frames=4)  # the embedded model's name: listed under another label
    return root


def picture(path, height=24, width=40, seed=0):
    rng = np.random.default_rng(seed)
    Image.fromarray((rng.random((height, width, 3)) * 255).astype(np.uint8)).save(path)
    return path


def kept_in(folder):
    """A `keep` for WebTasks outside a server: copies the result where the test can read it."""
    return lambda path: shutil.copy(path, folder / path.name)


def refusal(call, *args) -> str:
    """The one line a request gets instead of a video."""
    with pytest.raises(gr.Error) as error:
        call(*args)
    return error.value.message


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------------------------------ without a browser


def test_model_picker_lists_embedded_and_local_models_only(models_dir):
    models = find_models([models_dir, models_dir / "tiny"])  # a folder of models, and a model folder itself
    assert list(models) == [*EMBEDDED, f"{models_dir.name}/photo", "tiny"]  # once each; a clashing name relabelled
    assert models["tiny"].model == str((models_dir / "tiny").resolve()) and models["tiny"].window == 5
    assert models["photo"].model == "photo" and models["photo"].window == 16
    web = WebTasks(models, Limits(), keep=str)
    typed = refusal(web.animate, str(ROCKET), str(models_dir / "tiny"), 0, 0, 0)  # a path typed by a web user
    assert typed == f"Model: pick one of {', '.join(models)}, got '{models_dir / 'tiny'}'"


def test_results_equal_the_cli_for_the_same_seed(capsys, tmp_path, models_dir):
    image = picture(tmp_path / "in.png")
    temp_folders = set(Path(tempfile.gettempdir()).glob("lightvid-web-*"))
    web = WebTasks(find_models([models_dir]), Limits(), keep=kept_in(tmp_path))
    result = web.animate(str(image), "tiny", 7, 3, 1)  # 7 frames: two windows of 5
    code, _, err = run(capsys, "animate", image, "-o", tmp_path / "cli.mp4", "--model", models_dir / "tiny",
                       "--frames", 7, "--seed", 3, "--steps", 1)
    assert code == 0, err
    web_frames, cli_frames = read_video_uint8(result)[0], read_video_uint8(tmp_path / "cli.mp4")[0]
    assert web_frames.shape == (7, 16, 16, 3) and np.array_equal(web_frames, cli_frames)
    other = read_video_uint8(web.animate(str(image), "tiny", 7, 4, 1))[0]
    assert not np.array_equal(other, web_frames)  # the seed reaches the sampler
    assert set(Path(tempfile.gettempdir()).glob("lightvid-web-*")) == temp_folders  # each request's, removed


def test_interpolate_extend_loop_through_the_handlers(tmp_path, models_dir):
    web = WebTasks(find_models([models_dir]), Limits(), keep=kept_in(tmp_path))
    first, last = str(picture(tmp_path / "a.png", seed=1)), str(picture(tmp_path / "b.png", seed=2))
    assert read_video_uint8(web.interpolate(first, last, "tiny", 4, 0, 1))[0].shape[0] == 4
    assert read_video_uint8(web.loop(first, "tiny", 0, 0, 1))[0].shape[0] == 4  # default: window 5 - 1
    assert read_video_uint8(web.loop(first, "tiny", 7, 0, 1, "torch", "multidiffusion"))[0].shape[0] == 7  # windows
    write_video(np.random.default_rng(0).integers(0, 256, (6, 16, 16, 3), dtype=np.uint8), tmp_path / "in.mp4", fps=8)
    assert read_video_uint8(web.extend(str(tmp_path / "in.mp4"), "tiny", 3, 0, 0))[0].shape[0] == 9  # 2 steps
    # past the window: interpolation by multidiffusion; restyle keeps the frame count
    assert read_video_uint8(web.interpolate(first, last, "tiny", 8, 0, 1, "torch", "multidiffusion"))[0].shape[0] == 8
    assert read_video_uint8(web.restyle(str(tmp_path / "in.mp4"), "tiny", 0.5, 0, 1))[0].shape[0] == 6


def test_web_restyle_equals_the_cli(capsys, tmp_path, models_dir):
    from cli_run import run
    web = WebTasks(find_models([models_dir]), Limits(), keep=kept_in(tmp_path))
    write_video(np.random.default_rng(0).integers(0, 256, (6, 16, 16, 3), dtype=np.uint8), tmp_path / "in.mp4", fps=8)
    result = web.restyle(str(tmp_path / "in.mp4"), "tiny", 0.3, 5, 0)
    code, _, err = run(capsys, "restyle", tmp_path / "in.mp4", "-o", tmp_path / "cli.mp4", "--model",
                       models_dir / "tiny", "--strength", "0.3", "--seed", "5")
    assert code == 0, err
    assert Path(result).read_bytes() == (tmp_path / "cli.mp4").read_bytes()


def test_web_inpaint_and_cinemagraph_equal_the_cli(capsys, tmp_path, models_dir):
    web = WebTasks(find_models([models_dir]), Limits(), keep=kept_in(tmp_path))
    write_video(np.random.default_rng(0).integers(0, 256, (7, 24, 40, 3), dtype=np.uint8), tmp_path / "in.mp4", fps=8)
    mask = np.zeros((24, 40), np.uint8)
    mask[4:16, 8:24] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    photo = picture(tmp_path / "photo.png")  # 40x24, the mask's size
    for name, result, cli in [
        ("inpaint", web.inpaint(str(tmp_path / "in.mp4"), str(tmp_path / "mask.png"), "tiny", 3, 0),
         ["inpaint", tmp_path / "in.mp4", tmp_path / "mask.png"]),
        ("cinemagraph", web.cinemagraph(str(photo), str(tmp_path / "mask.png"), "tiny", 6, 3, 0),
         ["cinemagraph", photo, tmp_path / "mask.png", "--frames", 6]),
    ]:
        code, _, err = run(capsys, *cli, "-o", tmp_path / f"{name}.mp4", "--model", models_dir / "tiny", "--seed", 3)
        assert code == 0, err
        frames = read_video_uint8(result)[0]
        assert frames.shape[0] == (7 if name == "inpaint" else 6)  # inpaint keeps every frame of the video
        assert np.array_equal(frames, read_video_uint8(tmp_path / f"{name}.mp4")[0])
    photo_as_mask = refusal(web.inpaint, str(tmp_path / "in.mp4"), str(photo), "tiny", 0, 0)
    assert photo_as_mask == "photo.png is not a mask: it has colours; a mask is black (keep) and white (regenerate)"


@pytest.mark.parametrize("call,message", [
    (lambda web, img: web.animate(img, "tiny", 65, 0, 0), "Frames must be 2 to 64 (this app's limit), got 65"),
    (lambda web, img: web.animate(None, "tiny", 0, 0, 0), "Upload a photo first"),
    (lambda web, img: web.animate(img, "tiny", 0, 0, 51), "Steps must be 1 to 50 (this app's limit), got 51"),
    (lambda web, img: web.animate(img, "tiny", 0, 2**32, 0), "Seed must be a whole number from 0 to 4294967295"),
    (lambda web, img: web.interpolate(img, img, "tiny", 6, 0, 0), "Frames must be 3 to 5 for interpolation with "
     "tiny and Windows chain (its window is 5 frames), got 6"),
    (lambda web, img: web.animate(img, "tiny", 0, 0, 0, "torch", "tiles"), "Windows: pick one of chain, "
     "multidiffusion"),
    (lambda web, img: web.restyle(None, "tiny", 0.5, 0, 0), "Upload a video first"),
    (lambda web, img: web.restyle(img, "tiny", 0, 0, 0), "Strength must be more than 0 and at most 1, got 0"),
    (lambda web, img: web.restyle(img, "tiny", 0.5, 0, 0, runtime="onnx"), "restyle runs with torch"),
    (lambda web, img: web.loop(img, "tiny", 64, 0, 0), "Frames must be 3 to 63 (this app's limit, less the "
     "repeated first frame), got 64"),
    (lambda web, img: web.extend(None, "tiny", 0, 0, 0), "Upload a video first"),
    (lambda web, img: web.animate(img, "tiny", 0, 0, 0, runtime="tensorflow"), "Runtime: pick one of torch"),
])
def test_bad_requests_are_one_clear_line(tmp_path, models_dir, call, message):
    web = WebTasks(find_models([models_dir]), Limits(), keep=kept_in(tmp_path))
    refused = refusal(call, web, str(picture(tmp_path / "in.png")))
    assert message in refused and "\n" not in refused
    assert not list(tmp_path.glob("*.mp4"))


def test_uploads_over_the_pixel_and_frame_limits_are_refused_by_name(tmp_path, models_dir):
    web = WebTasks(find_models([models_dir]), Limits(megapixels=0.0005, frames=8), keep=kept_in(tmp_path))
    upload = tmp_path / "9f8e7d" / "holiday.png"  # gradio keeps an upload under a folder of its own
    upload.parent.mkdir()
    assert refusal(web.animate, str(picture(upload)), "tiny", 0, 0, 0) == (  # the limit, and no server path
        "holiday.png: the image 40x24 = 0.00096 megapixels: this app takes at most 0.0005 megapixels (scale it "
        "down first)")
    video = tmp_path / "clip.mp4"
    write_video(np.zeros((6, 16, 16, 3), np.uint8), video, fps=8)
    big = WebTasks(web.models, Limits(frames=8), keep=kept_in(tmp_path))
    assert refusal(big.extend, str(video), "tiny", 3, 0, 0) == (
        "clip.mp4: more than 5 frames at 8 fps; with 3 new frames the result would pass this app's limit of 8 frames "
        "(trim it first)")
    small = WebTasks(web.models, Limits(megapixels=0.0001), keep=str)
    assert "the video's frames 16x16 = 0.000256 megapixels: this app takes at most 0.0001" in \
        refusal(small.extend, str(video), "tiny", 1, 0, 0)
    (tmp_path / "fake.png").write_bytes(b"not an image at all")
    assert refusal(web.animate, str(tmp_path / "fake.png"), "tiny", 0, 0, 0).startswith("fake.png: ")  # CLI's check


@pytest.mark.parametrize("args,message", [
    (["--port", "70000"], "--port must be in [1, 65,535], got 70000"),
    (["--concurrency", "0"], "--concurrency must be in [1, 64], got 0"),
    (["--max-megapixels", "80"], "--max-megapixels must be above 0 and at most 50"),
    (["--models", "{empty}"], "holds no model folder (a folder with pipeline.json) and is none"),
    (["--models", "{empty}/missing"], "no such folder"),
    (["--port", "{busy}"], "cannot listen on 127.0.0.1:{busy}"),
])
def test_serve_option_errors_are_one_line_exit_2(capsys, tmp_path, args, message):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        values = {"empty": tmp_path, "busy": busy.getsockname()[1]}
        code, _, err = run(capsys, "serve", *(a.format(**values) for a in args))
    assert code == 2 and err.count("\n") == 1 and err.startswith("lightvid: error:"), err
    assert message.format(**values) in err, err


def test_serve_help_explains_every_option_and_gradio_loads_only_to_serve(capsys):
    code, out, _ = run(capsys, "serve", "--help")
    text = " ".join(re.sub(r"[│╭╮╰╯─]", " ", out).split())
    for option in ("--host", "--port", "--models", "--concurrency", "--queue-size", "--max-upload-mb",
                   "--max-megapixels", "--max-frames", "--max-steps"):
        assert re.search(rf"{option} \S+ [A-Z][a-z]+ ", text), f"{option} is not explained: {text}"
    assert code == 0 and "serve" in run(capsys, "--help")[1]
    imported = subprocess.run([sys.executable, "-c", "import sys, lightvid.cli; print('gradio' in sys.modules)"],
                              capture_output=True, text=True, check=True)
    assert imported.stdout.strip() == "False"  # `lightvid --help` and every other command stay fast


def test_ctrl_c_stops_the_server_cleanly():
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "lightvid.cli", "serve", "--port", str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    lines = []  # stderr, read as it comes: the port opens before the "serving on" line is printed
    reader = threading.Thread(target=lambda: lines.extend(server.stderr), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and server.poll() is None:
            if any(f"serving on http://127.0.0.1:{port}" in line for line in lines):
                break
            time.sleep(0.2)
        assert server.poll() is None, "".join(lines)
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)
        reader.join(timeout=10)
    finally:
        server.kill()
    err = "".join(lines)
    assert server.returncode == 130 and "lightvid: interrupted" in err and "Traceback" not in err, err
    assert f"serving on http://127.0.0.1:{port}" in err
    with socket.socket() as s:  # the port is free again
        assert s.connect_ex(("127.0.0.1", port)) != 0


def test_queue_is_bounded_and_reports_sampling_progress(models_dir):
    """Through the app's API (gradio_client, as bench/load_app.py drives it): with one request sampling and a
    queue of one, three simultaneous requests are not all taken: gradio answers "queue is full"; the samplers'
    tqdm steps reach the client as progress updates."""
    from gradio_client import Client, handle_file
    from gradio_client.utils import QueueError
    port = free_port()
    demo = build_app(find_models([models_dir]), Limits(), concurrency=1, queue_size=1)
    launch(demo, "127.0.0.1", port)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False, analytics_enabled=False, download_files=False)
        jobs = [client.submit(handle_file(ROCKET), "tiny", 0, seed, 10, "torch", api_name="/animate")
                for seed in range(3)]  # 10 steps: one request samples while the next arrive
        progress = set()
        while not all(job.done() for job in jobs):
            progress |= {(p.desc, p.length) for job in jobs for p in job.status().progress_data or []}
            time.sleep(0.02)
        outcomes = []
        for job in jobs:
            try:
                outcomes.append(job.result()[1]["orig_name"])
            except QueueError as e:
                outcomes.append(str(e))
    finally:
        demo.close(verbose=False)
    # which request arrives last (or whether the first left the queue before the others came) is the threads' race
    answered = [name for seed, name in enumerate(outcomes) if name == f"lightvid-animate-seed{seed}.mp4"]
    assert answered and "Queue is full! Please try again." in outcomes, outcomes
    assert ("sampling", 10) in progress


# ---------------------------------------------------------------------------------------------- in the browser


@pytest.fixture(scope="module")
def app_url(models_dir):
    port = free_port()
    limits = Limits(upload_mb=1)
    demo = build_app(find_models([models_dir]), limits)
    launch(demo, "127.0.0.1", port, limits.upload_mb)
    yield f"http://127.0.0.1:{port}/"
    demo.close(verbose=False)


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs it (Debian's chromium package); the browser tests "
                    "drive it and never download a browser")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, app_url):
    """A fresh page on the app; on leaving, every request the page made must have stayed on the app's server."""
    context = browser.new_context()
    page = context.new_page()
    requests = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto(app_url)
    page.wait_for_selector("#animate-input-0 input[type=file]", state="attached")
    yield page
    context.close()
    outside = [url for url in requests if not url.startswith((app_url, "data:", "blob:"))]
    assert not outside, f"the page loaded from outside the app: {outside}"


def test_browser_animates_an_upload_into_a_playable_video(page, tmp_path):
    page.locator("#animate-input-0 input[type=file]").set_input_files(ROCKET)
    page.wait_for_selector("#animate-input-0 img")
    page.fill("#animate-frames input", "65")  # over the limit first: one line in the page, no video
    page.click("#animate-run")
    page.get_by_text("Frames must be 2 to 64 (this app's limit), got 65").wait_for()
    page.fill("#animate-frames input", "0")  # the model's window
    page.click("#animate-run")
    video = "#animate-result video"
    page.wait_for_function(f"document.querySelector('{video}')?.readyState >= 2", timeout=60_000)
    assert page.evaluate(f"document.querySelector('{video}').duration") > 0  # Chromium decoded it
    page.get_by_text("lightvid-animate-seed0").first.wait_for()  # the download offers the file
    # the file the page plays, fetched from the app on 127.0.0.1 through the browser context
    (tmp_path / "result.mp4").write_bytes(page.request.get(page.get_attribute(video, "src"), timeout=30_000).body())
    frames, fps = read_video_uint8(tmp_path / "result.mp4")
    assert frames.shape == (16, 128, 128, 3) and fps == 8  # the photo model's window and frame rate


def test_browser_refuses_an_upload_over_the_size_limit(page, tmp_path):
    noise = np.random.default_rng(0).integers(0, 256, (700, 700, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "huge.png")  # about 1.5 MB: noise does not compress
    page.locator("#animate-input-0 input[type=file]").set_input_files(tmp_path / "huge.png")
    page.get_by_text("exceed the maximum allowed size of 1.0 Mb").wait_for(timeout=10_000)
    assert page.locator("#animate-input-0 img").count() == 0  # nothing was taken


# ------------------------------------------------------------------------------------------------- load (slow)


@pytest.mark.slow
def test_load_a_few_clients():
    """bench/load_app.py at a small scale: every request answered, results equal to the CLI's."""
    done = subprocess.run([sys.executable, "bench/load_app.py", "--clients", "3", "--requests", "2"], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "| 3 x 2 | 6 | 0 | 0 |" in done.stdout and "6/6" in done.stdout, done.stdout
