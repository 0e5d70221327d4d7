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
