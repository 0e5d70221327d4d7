import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # shared fixtures module (svd_fixtures)
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def svd_folder(tmp_path_factory):
    """A tiny random SVD pipeline saved in diffusers' on-disk format: (folder, diffusers pipeline)."""
    from svd_fixtures import make_svd_pipeline_folder

    folder = tmp_path_factory.mktemp("svd") / "tiny-svd"
    return folder, make_svd_pipeline_folder(folder)


@pytest.fixture(autouse=True)
def fresh_accelerate_state():
    """accelerate keeps one process-wide state (mixed precision included); tests that train with different
    settings each start from a clean one, as separate `lightvid train` processes would."""
    yield
    from accelerate.state import AcceleratorState
    AcceleratorState._reset_state(reset_partial_state=True)
