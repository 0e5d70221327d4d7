"""Training from WebDataset shards: batches by position, exact resume, a 2-process accelerate run, and `lightvid eval`
of the trained model on its test shards."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from cli_run import run
from safetensors.torch import load_file

from lightvid.data import MovingMNIST, WebDatasetShards, build_dataset, write_shards
from lightvid.errors import LightvidError
from lightvid.train import config_from_dict, train
from lightvid.train.batches import ShardBatches
from native_fixtures import save_tiny_native

CLIPS, PER_SHARD = 10, 4  # shards of 4, 4 and 2 samples


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> str:
    """A brace pattern over 3 shards of 6-frame 32x32 Moving MNIST videos (gray RGB H.264)."""
    root = tmp_path_factory.mktemp("shards")
    clips = [MovingMNIST(split="test", num_frames=6, size=32)[i] for i in range(CLIPS)]
    written = write_shards(clips, str(root / "train-%03d.tar"), PER_SHARD)
    assert [p.name for p in written] == ["train-000.tar", "train-001.tar", "train-002.tar"]
    write_shards(clips[:2], str(root / "test-%03d.tar"), PER_SHARD)
    return str(root / "train-{000..002}.tar")


def run_config(output_dir: Path, shards: str, **train_overrides) -> dict:
    """configs/tiny.yaml's model and schedule on 3-channel clips from the shards."""
    return {
        "output_dir": str(output_dir), "seed": 0,
        "data": {"name": "webdataset", "urls": shards, "num_frames": 4, "size": 32},
        "pipeline": {"data_channels": 3, "fps": 10, "conditioning": {"hint": "none"}, "steps": 2},
        "model": {"channels": [32, 32], "layers_per_level": [1, 1],
                  "heads": [1, 1], "transformer_depth": [1, 1], "attention": [False, True],
                  "temporal_attention": [False, True], "temporal_conv": [True, True],
                  "temporal_downsample": [False, False], "mid_attention": True, "cross_attention_dim": None,
                  "num_added_time_ids": 0, "down_eps": [1.0e-6, 1.0e-6], "mid_eps": 1.0e-6},
        "train": {"batch_size": 2, "steps": 4, "lr": 1.0e-3, "warmup_steps": 2, "checkpoint_every": 4,
                  "log_every": 1, "num_workers": 0, **train_overrides},
    }


def final_weights(run_dir: Path) -> dict:
    last = sorted((run_dir / "checkpoints").glob("step_*"))[-1]
    return {**load_file(last / "unet" / "model.safetensors"),
            **{f"ema.{k}": v for k, v in load_file(last / "ema.safetensors").items()}}


def test_shards_are_indexed_and_splits_pick_their_shards(shards):
    ds = WebDatasetShards(shards, num_frames=4, size=32)
    assert [len(s) for s in ds.samples()] == [4, 4, 2]
    assert [s.key for s in ds.samples()[1]] == ["000004", "000005", "000006", "000007"]
    frames, fps = ds.clip(ds.samples()[2][1], epoch=0)
    assert frames.shape == (4, 3, 32, 32) and fps == pytest.approx(10.0)  # rational fps as a float
    streamed = list(WebDatasetShards(shards, num_frames=4, size=32, shuffle_shards=False))
    assert torch.equal(streamed[9][0], frames)  # the clip iterating at epoch 0 yields for that sample
    test = build_dataset("webdataset", urls=shards, test_urls=shards.replace("train-{000..002}", "test-000"),
                         split="test", num_frames=4, size=32)
    assert [Path(s).name for s in test.shards] == ["test-000.tar"]
    with pytest.raises(LightvidError, match="the test split has no shards; give test_urls"):
        build_dataset("webdataset", urls=shards, split="test", num_frames=4, size=32)
    with pytest.raises(LightvidError, match="needs one %d field"):
        write_shards([], "shard.tar", 2)


def test_shard_batch_at_a_step_does_not_depend_on_earlier_steps(shards):
    def batches(batch_size=2, rank=0, world=1):
        return ShardBatches(WebDatasetShards(shards, num_frames=4, size=32), batch_size, 0, rank, world)

    direct = batches()[7]  # 5 steps per epoch: step 7 is in the second epoch, with its own shard order
    after = batches()
    for step in range(7):
        after[step]
    assert direct.shape == (2, 4, 3, 32, 32) and torch.equal(after[7], direct)
    one, two = batches(), [batches(rank=r, world=2) for r in (0, 1)]
    seen = []
    for step in range(5):  # world 2: an epoch is 10 samples = 2.5 steps, so 5 steps are 2 epochs
        mine = [set(two[r].samples(step)) for r in (0, 1)]
        assert not mine[0] & mine[1]  # the ranks read different samples
        seen += [s for r in (0, 1) for s in two[r].samples(step)]
    everything = [s for shard in one.shards.samples() for s in shard]
    assert sorted(seen, key=str) == sorted(everything * 2, key=str)  # every sample once per epoch
    assert torch.equal(torch.cat([two[0][2], two[1][2]]), batches(batch_size=4)[2])  # one global batch, split
    assert one.samples(0) != one.samples(5)  # epochs differ in shard order


def test_an_undecodable_sample_is_replaced_by_the_next_one(shards, tmp_path):
    (tmp_path / "bad.mp4").write_bytes(b"\x00corrupt" * 100)
    good = WebDatasetShards(shards).samples()[0][0]
    (tmp_path / "good.mp4").write_bytes(Path(shards.replace("{000..002}", "000")).read_bytes()[
        good.offset: good.offset + good.size])
    write_shards([tmp_path / "bad.mp4", tmp_path / "good.mp4"], str(tmp_path / "mixed-%d.tar"), 2)
    batches = ShardBatches(WebDatasetShards(str(tmp_path / "mixed-0.tar"), num_frames=4, size=32,
                                            shuffle_shards=False), 2, 0, 0, 1)
    with pytest.warns(UserWarning, match="000000.mp4"):
        batch = batches[0]
    assert torch.equal(batch[0], batch[1]) and len(batches.bad) == 1


def test_training_from_shards_writes_a_model_and_resumes_exactly(shards, tmp_path):
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    train(config_from_dict(run_config(straight, shards)), progress=False)
    assert json.loads((straight / "model" / "pipeline.json").read_text())
    train(config_from_dict(run_config(stopped, shards)), max_steps=2, progress=False)
    assert [p.name for p in (stopped / "checkpoints").iterdir()] == ["step_00000002"]
    train(config_from_dict(run_config(stopped, shards)), progress=False)  # resumes 2 -> 4
    a, b = final_weights(straight), final_weights(stopped)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.skipif(not Path(sys.executable).with_name("accelerate").exists() and shutil.which("accelerate") is None,
                    reason="accelerate CLI not installed")
def test_two_process_accelerate_run_trains_from_shards(shards, tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(run_config(tmp_path / "ddp", shards)))
    launcher = Path(sys.executable).with_name("accelerate")
    launcher = str(launcher) if launcher.exists() else shutil.which("accelerate")
    result = subprocess.run([launcher, "launch", "--num_processes", "2", "--num_machines", "1", "--cpu",
                             "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "lightvid.train",
                             "--config", str(config), "--max-steps", "2"],
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert [p.name for p in (tmp_path / "ddp" / "checkpoints").iterdir()] == ["step_00000002"]
    assert (tmp_path / "ddp" / "model" / "pipeline.json").exists()


def test_shard_clips_by_position_are_the_streamed_clips(shards):
    streamed = list(WebDatasetShards(shards, num_frames=4, size=32, shuffle_shards=False))
    clips = WebDatasetShards(shards, num_frames=4, size=32).clips()  # listed order, whatever shuffle_shards says
    assert len(clips) == CLIPS == len(streamed)
    for i in (0, 5, CLIPS - 1):
        frames, fps = clips[i]
        assert torch.equal(frames, streamed[i][0]) and fps == streamed[i][1]
    assert torch.equal(clips[-1][0], clips[CLIPS - 1][0])
    with pytest.raises(IndexError):
        clips[CLIPS]
    later = WebDatasetShards(shards, num_frames=4, size=32).clips(epoch=1)
    ds = WebDatasetShards(shards, num_frames=4, size=32)
    assert torch.equal(later[5][0], ds.clip(ds.samples()[1][1], epoch=1)[0])


def test_eval_reads_the_shards_the_model_was_trained_on(shards, tmp_path, capsys):
    test_urls = shards.replace("train-{000..002}", "test-000")
    config = run_config(tmp_path / "run", shards, steps=2, warmup_steps=1, checkpoint_every=2)
    config["data"]["test_urls"] = test_urls
    train(config_from_dict(config), progress=False)
    model = tmp_path / "run" / "model"
    saved = json.loads((model / "pipeline.json").read_text())
    assert saved["dataset"] == "webdataset"
    assert saved["data"] == {"urls": shards, "test_urls": test_urls, "num_frames": 4, "size": 32}
    code, out, err = run(capsys, "eval", "--model", model, "--task", "interpolate", "--clips", 2, "--no-fd")
    assert code == 0, err
    assert "webdataset test split · 2 clips" in out
    rows = [line.split("|")[1].strip() for line in out.splitlines() if line.startswith("| ")][1:]
    assert rows == ["model", "copy_nearest", "linear_blend", "farneback", "farneback_visible", "farneback_global"]
    code, _, err = run(capsys, "eval", "--model", model, "--task", "interpolate", "--clips", 3, "--no-fd")
    assert code == 2 and "--clips must be in [1, 2] for the webdataset test split" in err  # the 2 test clips

    del saved["data"]["test_urls"]  # a split without shards: one line, exit 2
    (model / "pipeline.json").write_text(json.dumps(saved))
    code, out, err = run(capsys, "eval", "--model", model, "--task", "interpolate", "--clips", 2, "--no-fd")
    assert (code, out) == (2, "")
    assert err == "lightvid: error: webdataset: the test split has no shards; give test_urls\n"


def test_eval_of_a_built_in_dataset_ignores_recorded_options(tmp_path, capsys):
    reports = []
    for data in (None, {"seed": 5, "num_digits": 1, "length": 3, "num_frames": 9, "size": 64}):
        folder = save_tiny_native(tmp_path / f"m{len(reports)}", data_channels=1, size=32, frames=4,
                                  dataset="moving_mnist")
        if data is not None:
            facts = json.loads((folder / "pipeline.json").read_text())
            (folder / "pipeline.json").write_text(json.dumps({**facts, "data": data}))
        code, out, err = run(capsys, "eval", "--model", folder, "--task", "interpolate", "--clips", 1, "--no-fd",
                             "--json")
        assert code == 0, err
        reports.append(json.loads(out)["results"])
    assert reports[0] == reports[1]
