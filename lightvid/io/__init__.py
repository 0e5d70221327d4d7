"""Video and image input/output (PyAV, Pillow), all writes atomic.

Pixels are float32 (3, H, W) / (F, 3, H, W) in [-1, 1] unless a name says uint8.
"""

from lightvid.io.atomic import AtomicOutputs, atomic_dir, atomic_outputs, atomic_write, check_dir_target, shown
from lightvid.io.image import (
    IMAGE_FILE,
    MAX_IMAGE_PIXELS,
    check_image,
    load_image,
    pil_to_tensor,
    resize_and_crop,
    tensor_to_pil,
    tensor_to_uint8,
    uint8_to_tensor,
)
from lightvid.io.paths import check_input, is_same_file
from lightvid.io.video import (
    FOLDER_FPS,
    MAX_READ_FRAMES,
    VIDEO_INPUT,
    check_output_path,
    preview_path,
    read_video,
    read_video_uint8,
    write_video,
)

__all__ = [
    "FOLDER_FPS",
    "IMAGE_FILE",
    "MAX_IMAGE_PIXELS",
    "MAX_READ_FRAMES",
    "VIDEO_INPUT",
    "AtomicOutputs",
    "atomic_dir",
    "atomic_outputs",
    "atomic_write",
    "check_dir_target",
    "check_image",
    "check_input",
    "check_output_path",
    "is_same_file",
    "load_image",
    "pil_to_tensor",
    "preview_path",
    "read_video",
    "read_video_uint8",
    "resize_and_crop",
    "shown",
    "tensor_to_pil",
    "tensor_to_uint8",
    "uint8_to_tensor",
    "write_video",
]
