"""Load test of `lightvid serve`: concurrent clients animate a photo through the app's API, as browsers would.

Starts `lightvid serve` in a subprocess (127.0.0.1, a free port, the default settings: --concurrency 1), then
CLIENTS threads, each its own gradio_client.Client (its own session, like a browser tab), send REQUESTS animate
requests each, one after another, every one with its own seed. A fixed number of requests and a deadline: the
run ends by itself. Then the server is stopped with Ctrl-C (SIGINT, expecting exit code 130), and every result is
compared with the CLI's `lightvid animate IMAGE --seed S` run in this process afterwards: decoded frames exactly,
and whether the mp4 files are byte for byte the same (H.264 encoding is deterministic here, but the frames are
what counts).

Prints a markdown table: requests answered, failed (an error) and dropped (queue full, or still unanswered at the
deadline), latency from sending to the result downloaded (it includes waiting in the queue: with concurrency 1
and 10 clients a request waits for about 9 others), the server's peak RSS (its children included; the larger of
0.05 s sampling and the kernel's VmHWM) and how many results equal the CLI's. Exit code 1 unless every request
was answered and equals the CLI's.

    .venv/bin/python bench/load_app.py                            # 10 clients x 5 requests, the photo model
    .venv/bin/python bench/load_app.py --clients 3 --requests 2   # what tests/test_web.py's slow test runs
"""
import argparse
import contextlib
import io
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parent.parent
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # gradio_client too: nothing leaves the machine


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--requests", type=int, default=5, help="requests per client, one after another")
    parser.add_argument("--model", default="photo")
    parser.add_argument("--image", type=Path, default=ROOT / "examples" / "rocket.jpg")
    parser.add_argument("--concurrency", type=int, default=1, help="the server's --concurrency")
    parser.add_argument("--deadline", type=float, default=1800, help="seconds for all requests")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="lightvid-load-") as folder:
        work = Path(folder)
        port = free_port()
        log = open(work / "server.log", "w")  # a file, not a pipe: the server's progress bars could fill a pipe
        command = [sys.executable, "-m", "lightvid.cli", "serve", "--port", str(port), "--concurrency",
                   str(args.concurrency), "--queue-size", str(max(16, args.clients))]
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        try:
            wait_for_port(port, server)
            memory = PeakMemory(server.pid)
            start = time.perf_counter()
            results = run_clients(f"http://127.0.0.1:{port}/", args, work)
            wall = time.perf_counter() - start
            peak = max(memory.stop(), vm_hwm(server.pid))
            server.send_signal(signal.SIGINT)
            stopped = server.wait(timeout=60)
        finally:
            server.kill()
            log.close()
        if stopped != 130:
            print((work / "server.log").read_text()[-3000:], file=sys.stderr)
        equal, same_bytes = compare_with_cli(results, args, work)
        ok = print_table(results, args, wall, peak, equal, same_bytes)
        return 0 if ok and stopped == 130 else 1


def run_clients(url: str, args, work: Path) -> list[dict]:
    """CLIENTS threads x REQUESTS requests: one dict per request (seed, latency, result path or error)."""
    from gradio_client import Client, handle_file
    from gradio_client.utils import QueueError

    results = [{"seed": c * args.requests + r, "dropped": True} for c in range(args.clients)
               for r in range(args.requests)]  # each stays "dropped" unless it is answered or fails

    def client(index: int) -> None:
        downloads = work / f"client{index}"
        api = Client(url, verbose=False, analytics_enabled=False, download_files=str(downloads))
        for request in results[index * args.requests:(index + 1) * args.requests]:
            sent = time.perf_counter()
            try:
                video, _ = api.predict(handle_file(args.image), args.model, 0, request["seed"], 0,
                                       api_name="/animate")
                request.update(dropped=False, latency=time.perf_counter() - sent, video=video)
            except QueueError:
                pass  # stays dropped
            except Exception as e:  # noqa: BLE001  (any other failure is counted and reported, not raised)
                request.update(dropped=False, error=f"{type(e).__name__}: {e}")

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(args.clients)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + args.deadline
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
    return results


def compare_with_cli(results: list[dict], args, work: Path) -> tuple[int, int]:
    """(results whose frames equal the CLI's for the same seed, results byte-identical to the CLI's file)."""
    from lightvid.cli import main as lightvid
    from lightvid.io import read_video_uint8

    equal = same_bytes = 0
    for request in results:
        if "video" not in request:
            continue
        cli = work / f"cli-{request['seed']}.mp4"
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as err:
            code = lightvid(["animate", str(args.image), "-o", str(cli), "--model", args.model,
                             "--seed", str(request["seed"])])
        if code != 0:
            sys.exit(f"the CLI failed: {err.getvalue()}")
        web = Path(request["video"])
        equal += np.array_equal(read_video_uint8(web)[0], read_video_uint8(cli)[0])
        same_bytes += web.read_bytes() == cli.read_bytes()
    return equal, same_bytes


def print_table(results: list[dict], args, wall: float, peak: int, equal: int, same_bytes: int) -> bool:
    answered = [r for r in results if "video" in r]
    failed = [r for r in results if "error" in r]
    dropped = [r for r in results if r["dropped"]]
    latencies = [r["latency"] for r in answered] or [float("nan")]
    print("| clients x requests | answered | failed | dropped | median latency (s) | max latency (s) | wall (s) | "
          "requests/s | server peak RSS (MiB) | frames equal to the CLI's | identical mp4 files |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    print(f"| {args.clients} x {args.requests} | {len(answered)} | {len(failed)} | {len(dropped)} | "
          f"{statistics.median(latencies):.2f} | {max(latencies):.2f} | {wall:.1f} | {len(answered) / wall:.2f} | "
          f"{peak / 2**20:.0f} | {equal}/{len(answered)} | {same_bytes}/{len(answered)} |")
    print(f"\nmodel {args.model}, {args.image.name}, server --concurrency {args.concurrency}; {cpu_name()}")
    for request in failed[:5]:
        print(f"seed {request['seed']} failed: {request['error']}")
    return len(answered) == len(results) and equal == len(answered)


class PeakMemory:
    """The largest RSS of a process and its children together, sampled every 0.05 s in a thread."""

    def __init__(self, pid: int):
        self.process, self.peak, self.running = psutil.Process(pid), 0, True
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def _sample(self) -> None:
        while self.running:
            with contextlib.suppress(psutil.Error):
                family = [self.process, *self.process.children(recursive=True)]
                self.peak = max(self.peak, sum(p.memory_info().rss for p in family))
            time.sleep(0.05)

    def stop(self) -> int:
        self.running = False
        self.thread.join()
        return self.peak


def vm_hwm(pid: int) -> int:
    """The kernel's record of the process's peak RSS (VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, server: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"the server exited with code {server.returncode} before listening")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    sys.exit(f"the server did not listen on port {port} within {timeout:g} s")


def cpu_name() -> str:
    import torch
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), "unknown CPU")
    return f"{model}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.backends.cpu.get_cpu_capability()})"


if __name__ == "__main__":
    sys.exit(main())
