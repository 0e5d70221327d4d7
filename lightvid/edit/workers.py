"""Edit a video: the anchor pass here, then the frames split across P processes with torch.distributed.

Every chunk of frames is edited on ONE CPU thread, in this process (P = 1) or in a worker (P > 1): on CPU a
matmul's last bits can depend on the thread count, and the chunking (`EditPlan.batch`) never depends on P, so the
output of any P is the output of P = 1, bit for bit. The anchor pass runs once, here, with this process's threads,
and reaches the workers by `broadcast_object_list` from rank 0; results come back to rank 0 by `gather_object`.
Workers join a gloo process group on this machine; the same calls run over NCCL or across machines.
"""
import os
import socket
import tempfile
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from lightvid.errors import LightvidError

from .editor import Editor
from .pipeline import EditPlan, FrameEditor, anchor_indices, check_plan, chunks, one_thread


def available_cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, folder: str, images: torch.Tensor, plan: EditPlan,
            cache_file: str, counter, result_file: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        frames = FrameEditor(Editor.from_pretrained(Path(folder)), plan, *images.shape[-2:])
        box = [load_file(cache_file) if rank == 0 else None]  # rank 0 holds the anchor pass's cache
        dist.broadcast_object_list(box, src=0)
        frames.cache.load(box[0])
        mine = {}
        for index, chunk in list(enumerate(chunks(images.shape[0], plan.batch)))[rank::world]:
            mine[str(index)] = frames.edit_chunk(images[chunk.start:chunk.stop])
            with counter.get_lock():
                counter.value += len(chunk)
        everything = [None] * world if rank == 0 else None
        dist.gather_object(mine, everything, dst=0)
        if rank == 0:
            save_file({k: v.contiguous() for part in everything for k, v in part.items()}, result_file)
    finally:
        dist.destroy_process_group()


def edit_video(folder: Path, images: torch.Tensor, plan: EditPlan, workers: int = 1, progress: bool = True,
               editor: Editor | None = None) -> torch.Tensor:
    """images (f, 3, H, W) in [-1, 1] -> edited (f, 3, H, W). `folder`: the editor's folder (workers load it;
    `editor`, if given, is that folder already loaded, used for the anchor pass and P = 1)."""
    check_plan(plan)
    if images.ndim != 4 or images.shape[0] == 0 or images.shape[1] != 3:
        raise LightvidError(f"frames to edit must be (frames >= 1, 3, h, w), got {tuple(images.shape)}")
    editor = editor or Editor.from_pretrained(folder)
    frames = FrameEditor(editor, plan, *images.shape[-2:])
    anchors = anchor_indices(images.shape[0], plan.anchors)
    if anchors:
        frames.record_anchors(images[anchors], progress)
    parts = chunks(images.shape[0], plan.batch)
    workers = max(1, min(workers, len(parts)))
    bar = tqdm(total=images.shape[0], desc="editing frames", unit="frame", disable=not progress)
    if workers == 1:
        edited = []
        with one_thread():
            for chunk in parts:
                edited.append(frames.edit_chunk(images[chunk.start:chunk.stop]))
                bar.update(len(chunk))
        bar.close()
        return torch.cat(edited)
    context = mp.get_context("spawn")
    counter = context.Value("i", 0)
    with tempfile.TemporaryDirectory(prefix="lightvid-edit-") as tmp:
        cache_file, result_file = str(Path(tmp) / "anchors.safetensors"), str(Path(tmp) / "edited.safetensors")
        save_file({k: v.contiguous() for k, v in frames.cache.tensors().items()}, cache_file)
        running = mp.start_processes(_worker, nprocs=workers, join=False, start_method="spawn",
                                     args=(workers, _free_port(), str(folder), images, plan, cache_file, counter,
                                           result_file))
        while not running.join(timeout=0.2):
            if counter.value > bar.n:
                bar.update(counter.value - bar.n)
        bar.update(counter.value - bar.n)
        bar.close()
        result = load_file(result_file)
    return torch.cat([result[str(i)] for i in range(len(parts))])
