"""Video and image input/output (PyAV, Pillow), all writes atomic.

Pixels are float32 (3, H, W) / (F, 3, H, W) in [-1, 1] unless a name says uint8.
"""

from lightvid.io.atomic import atomic_dir, atomic_write, check_dir_target
from lightvid.io.image import (
    load_image,
    pil_to_tensor,
    resize_and_crop,
    tensor_to_pil,
    tensor_to_uint8,
    uint8_to_tensor,
)
from lightvid.io.video import (
    FOLDER_FPS,
    MAX_READ_FRAMES,
    check_output_path,
    read_video,
    read_video_uint8,
    write_video,
)

__all__ = [
    "FOLDER_FPS",
    "MAX_READ_FRAMES",
    "atomic_dir",
    "atomic_write",
    "check_dir_target",
    "check_output_path",
    "load_image",
    "pil_to_tensor",
    "read_video",
    "read_video_uint8",
    "resize_and_crop",
    "tensor_to_pil",
    "tensor_to_uint8",
    "uint8_to_tensor",
    "write_video",
]
