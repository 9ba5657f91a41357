"""Tar shards: exact round trip, rank shares, seeded shuffles, resume, corrupt members, bad paths, training."""
import io
import json
import shutil
import tarfile
import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from selfsup.cli import main as cli
from selfsup.data import load_dataset
from selfsup.data.shards import ShardLoader, index_shards, open_shards, tar_samples, write_shards
from selfsup.registry import ConfigError
from selfsup.runs.evaluate import evaluate_run
from selfsup.train import checkpoint
from selfsup.train.build import load_checked_config, method_from_config
from selfsup.train.loop import train
from selfsup.train.speed import measure_data_speed
from selfsup.train.step import TrainStep
from tests.train.test_loop import TINY  # the loop tests' tiny run settings

pytestmark = pytest.mark.usefixtures("one_thread")

N, PER_SHARD = 256, 64  # 4 shards: two per rank with 2 ranks


@pytest.fixture(scope="module")
def source():
    return load_dataset("fashion_mnist", split="test").subset(range(N))


@pytest.fixture(scope="module")
def shard_dir(source, tmp_path_factory):
    return write_shards(source, tmp_path_factory.mktemp("shards") / "fmnist", images_per_shard=PER_SHARD)


def epoch_batches(loader):
    return [(b.images.clone(), b.index.clone(), b.labels.clone()) for b in loader]


def indices(batches):
    return torch.cat([i for _, i, _ in batches]).tolist()


def assert_matches_source(batches, source):
    for images, index, labels in batches:
        assert images.dtype == torch.uint8 and images.shape[1:] == (1, 28, 28)
        assert np.array_equal(images.permute(0, 2, 3, 1).numpy(), source.images[index.numpy()])  # pixel-exact
        assert np.array_equal(labels.numpy(), source.labels[index.numpy()])


def test_layout_is_webdataset_and_shards_json_describes_it(shard_dir, source):
    info = json.loads((shard_dir / "shards.json").read_text())
    assert info["count"] == N and [s["count"] for s in info["shards"]] == [64, 64, 64, 64]
    assert (info["resolution"], info["channels"], info["classes"]) == (28, 1, source.classes)
    with tarfile.open(shard_dir / "shard-000001.tar") as tar:
        names = tar.getnames()
        png = tar.extractfile("000064.png").read()
        cls = tar.extractfile("000064.cls").read()
    assert names[:4] == ["000064.png", "000064.cls", "000065.png", "000065.cls"] and len(names) == 2 * PER_SHARD
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(png))), source.images[64, :, :, 0])
    assert int(cls) == source.labels[64]


def test_round_trip_gives_every_image_once_with_its_label(shard_dir, source):
    ds = open_shards(shard_dir)
    assert len(ds) == N and ds.resolution == 28 and ds.mean == pytest.approx(source.mean)
    loader = ShardLoader(ds, batch_size=32, shuffle_buffer=100)
    batches = epoch_batches(loader)
    assert len(batches) == len(loader) == N // 32 and (loader.epoch, loader.position) == (1, 0)
    assert sorted(indices(batches)) == list(range(N))
    assert_matches_source(batches, source)


def test_two_ranks_take_disjoint_shards_covering_every_image(shard_dir):
    ds = open_shards(shard_dir)
    for epoch in range(2):
        shares = []
        for rank in range(2):
            loader = ShardLoader(ds, batch_size=16, rank=rank, world_size=2, shuffle_buffer=50)
            loader.epoch = epoch
            shares.append(indices(epoch_batches(loader)))
            assert {i // PER_SHARD % 2 for i in shares[-1]} == {rank}  # shard i belongs to rank i % 2
        assert not set(shares[0]) & set(shares[1])
        assert sorted(shares[0] + shares[1]) == list(range(N))
    with pytest.raises(ValueError, match="4 shard.*for 5 processes"):
        ShardLoader(ds, batch_size=4, rank=0, world_size=5)


def test_uneven_shares_give_every_rank_the_same_number_of_batches(source, tmp_path):
    ds = open_shards(write_shards(source, tmp_path / "uneven", images_per_shard=100))  # 100, 100, 56: ranks 156 / 100
    lengths = [len(epoch_batches(ShardLoader(ds, batch_size=32, rank=r, world_size=2))) for r in range(2)]
    assert lengths == [3, 3]


def test_epochs_shuffle_differently_and_are_seeded(shard_dir):
    ds = open_shards(shard_dir)

    def run(seed):  # two epochs' orders
        loader = ShardLoader(ds, 32, seed=seed)
        return [indices(epoch_batches(loader)) for _ in range(2)]

    a, again, other = run(0), run(0), run(1)
    assert a == again
    assert a[0] != a[1] and sorted(a[0]) == sorted(a[1])
    assert a[0] != other[0]
    assert a[0] != sorted(a[0])  # the buffer mixes images within and across shards


def test_resume_from_state_dict_yields_the_same_batches(shard_dir):
    ds = open_shards(shard_dir)
    uninterrupted = ShardLoader(ds, batch_size=48, seed=3, shuffle_buffer=40)  # 5 batches per epoch
    stream = (b for _ in range(3) for b in uninterrupted)
    for _ in range(3):
        next(stream)
    state = uninterrupted.state_dict()
    expected = [next(stream) for _ in range(6)]  # the rest of epoch 0 and into epoch 1
    resumed = ShardLoader(ds, batch_size=48, seed=3, shuffle_buffer=40)
    resumed.load_state_dict(state)
    got = [b for _ in range(2) for b in resumed][:6]
    for e, g in zip(expected, got, strict=True):
        assert torch.equal(e.images, g.images) and torch.equal(e.index, g.index) and torch.equal(e.labels, g.labels)
    with pytest.raises(ValueError, match="seed=3.*has 4"):
        ShardLoader(ds, batch_size=48, seed=4, shuffle_buffer=40).load_state_dict(state)


def test_decoding_threads_give_the_same_batches(shard_dir, source):
    ds = open_shards(shard_dir)
    one = ShardLoader(ds, batch_size=32, seed=5, shuffle_buffer=40)
    expected = [b for _ in range(2) for b in one]  # two epochs
    for workers in (1, 3):  # chunks of 32 and 10 samples
        threaded = ShardLoader(ds, batch_size=32, seed=5, shuffle_buffer=40, workers=workers)
        got = [b for _ in range(2) for b in threaded]  # two epochs
        assert len(got) == len(expected) == 2 * (N // 32)
        for e, g in zip(expected, got):
            assert torch.equal(e.images, g.images) and torch.equal(e.index, g.index) and torch.equal(e.labels, g.labels)
    assert_matches_source([(b.images, b.index, b.labels) for b in expected], source)
    with pytest.raises(ValueError, match="workers must be a non-negative integer, got -1"):
        ShardLoader(ds, batch_size=32, workers=-1)


def test_breaking_out_keeps_the_position(shard_dir):
    ds = open_shards(shard_dir)
    whole = indices(epoch_batches(ShardLoader(ds, 32)))
    loader, parts = ShardLoader(ds, 32), []
    for _ in range(3):
        for b in loader:
            parts.extend(b.index.tolist())
            if len(parts) % 96 == 0:
                break
    assert parts == whole


def test_shards_written_elsewhere_are_indexed_then_streamed(source, tmp_path):
    """Tars as webdataset.ShardWriter writes them (PAX format, owner and time set, keys in a folder), no shards.json."""
    folder = tmp_path / "wds"
    folder.mkdir()
    for name, rows in (("a-0.tar", range(0, 150)), ("a-1.tar", range(150, N))):
        with tarfile.open(folder / name, "w", format=tarfile.PAX_FORMAT) as tar:
            for i in rows:
                png = io.BytesIO()
                # colour: converted back to grey
                Image.fromarray(source.images[i, :, :, 0]).convert("RGB").save(png, "PNG")
                for ext, data in (("png", png.getvalue()), ("cls", str(source.labels[i]).encode())):
                    info = tarfile.TarInfo(f"train/{i:06d}.{ext}")
                    info.size, info.mtime, info.uname = len(data), 1_700_000_000, "bigdata"
                    tar.addfile(info, io.BytesIO(data))
    index_shards(folder, classes=source.classes, channels=1)
    ds = open_shards(folder)
    assert [c for _, c in ds.shards] == [150, N - 150] and ds.labelled and ds.resolution == 28
    assert ds.mean == pytest.approx(source.mean) and ds.std == pytest.approx(source.std)
    batches = epoch_batches(ShardLoader(ds, batch_size=32, rank=1, world_size=2))  # the second tar: 106 images
    assert len(batches) == 3 and set(indices(batches)) <= set(range(150, N))
    assert_matches_source(batches, source)


def _rewrite_member(shard, member, data):
    """Copy ``shard`` with ``member``'s bytes replaced by ``data``."""
    with tarfile.open(shard) as tar:
        items = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
    with tarfile.open(shard, "w") as tar:
        for m, payload in items:
            payload = data if m.name == member else payload
            m.size = len(payload)
            tar.addfile(m, io.BytesIO(payload))


@pytest.mark.parametrize("workers", [0, 2])
def test_corrupt_members_are_skipped_counted_and_warned_about_once(shard_dir, source, tmp_path, workers):
    bad = tmp_path / "bad"
    shutil.copytree(shard_dir, bad)
    _rewrite_member(bad / "shard-000002.tar", "000130.png", b"\x89PNG not really")
    _rewrite_member(bad / "shard-000003.tar", "000200.cls", b"seven")
    _rewrite_member(bad / "shard-000000.tar", "000010.cls", b"12")  # Fashion-MNIST has 10 classes
    loader = ShardLoader(open_shards(bad), batch_size=32, workers=workers)
    with pytest.warns(UserWarning) as caught:
        batches = epoch_batches(loader)
    messages = sorted(str(w.message) for w in caught)
    assert len(messages) == 3
    assert (
        "shard-000000.tar: skipping corrupt member 000010.cls (InputError: label 12 is outside [0, 10))" in messages[0]
    )
    assert "shard-000002.tar: skipping corrupt member 000130.png" in messages[1]
    assert "shard-000003.tar: skipping corrupt member 000200.cls" in messages[2]
    assert loader.skipped == 3
    assert set(loader.corrupt) == {
        "shard-000000.tar:000010.cls",
        "shard-000002.tar:000130.png",
        "shard-000003.tar:000200.cls",
    }
    seen = indices(batches)
    assert not {10, 130, 200} & set(seen) and len(batches) == N // 32 - 1  # 253 images: 7 whole batches
    assert_matches_source(batches, source)
    with warnings.catch_warnings(record=True) as again:
        warnings.simplefilter("always")
        epoch_batches(loader)  # met again next epoch: counted, not warned about again
    assert not again and loader.skipped == 6 and len(loader.corrupt) == 3


def test_truncated_shard_keeps_its_first_images_and_warns(shard_dir, source, tmp_path):
    bad = tmp_path / "truncated"
    shutil.copytree(shard_dir, bad)
    raw = (bad / "shard-000000.tar").read_bytes()
    (bad / "shard-000000.tar").write_bytes(raw[: len(raw) // 2 + 100])
    loader = ShardLoader(open_shards(bad), batch_size=16, shuffle_buffer=0)
    with pytest.warns(UserWarning, match="shard-000000.tar: skipping corrupt member after 0000"):
        batches = [b for _ in range(3) for b in loader]
    seen = indices([(b.images, b.index, b.labels) for b in batches])
    assert 0 in seen and 63 not in seen and {64, 255} <= set(seen)
    readable = 0
    with pytest.raises(Exception):  # noqa: B017 -- tarfile's kinds of damage
        for _ in tar_samples(bad / "shard-000000.tar"):
            readable += 1
    assert 0 < readable < PER_SHARD and loader.skipped == 3 * (PER_SHARD - readable)  # lost samples, every epoch
    assert_matches_source([(b.images, b.index, b.labels) for b in batches], source)


def test_bad_paths_give_errors_naming_the_file(shard_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nowhere/shards.json not found"):
        open_shards(tmp_path / "nowhere")
    broken = tmp_path / "broken"
    shutil.copytree(shard_dir, broken)
    (broken / "shard-000001.tar").unlink()
    with pytest.raises(FileNotFoundError, match=r"broken/shard-000001.tar not found"):
        open_shards(broken)
    (broken / "shard-000001.tar").write_text("not a tar file")  # skipped like a damaged tail, every sample counted
    loader = ShardLoader(open_shards(broken), batch_size=32)
    with pytest.warns(UserWarning, match=r"broken/shard-000001.tar: skipping .*\(64 samples\) is unreadable"):
        assert len(epoch_batches(loader)) == (N - PER_SHARD) // 32
    assert loader.skipped == PER_SHARD
    info = json.loads((broken / "shards.json").read_text())
    for outside in ("../shard-000001.tar", "/tmp/shard-000001.tar"):
        (broken / "shards.json").write_text(json.dumps({**info, "shards": [{"file": outside, "count": N}]}))
        with pytest.raises(ValueError, match=rf"lists shard '{outside}': shard files must be plain names"):
            open_shards(broken)
    (broken / "shards.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"broken/shards.json is unreadable"):
        open_shards(broken)
    with pytest.raises(FileExistsError, match="already holds shards"):
        write_shards(load_dataset("fashion_mnist", split="test").subset(range(4)), shard_dir)


def test_an_epoch_that_gives_no_batch_is_an_error_not_a_hang(shard_dir, tmp_path):
    wrong = tmp_path / "wrong"
    shutil.copytree(shard_dir, wrong)
    info = json.loads((wrong / "shards.json").read_text())
    (wrong / "shards.json").write_text(json.dumps({**info, "resolution": 32}))  # the images are 28 px
    loader = ShardLoader(open_shards(wrong), batch_size=32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match=r"wrong: epoch 0 gave no batch of 32: 256 sample\(s\) skipped, e.g. "
                                             r"shard-0000.*image is 28x28, shards.json says 32 px"):
            epoch_batches(loader)


@pytest.mark.parametrize("key, why", [("sample{i:06d}", "'train/sample000000' is not a global index"),
                                      ("{j:06d}", "key 250 is out of that range")])
def test_index_shards_refuses_keys_the_reader_cannot_serve(source, tmp_path, key, why):
    folder = tmp_path / "keys"
    folder.mkdir()
    with tarfile.open(folder / "a.tar", "w") as tar:
        for i in range(8):
            png = io.BytesIO()
            Image.fromarray(source.images[i, :, :, 0]).save(png, "PNG")
            info = tarfile.TarInfo(f"train/{key.format(i=i, j=i + 250)}.png")
            info.size = len(png.getvalue())
            tar.addfile(info, io.BytesIO(png.getvalue()))
    with pytest.raises(ValueError, match=why):
        index_shards(folder, channels=1)
    assert not (folder / "shards.json").exists()


def shard_config(tmp_path, shard_dir, name, *extra, method="rotation"):
    tiny = [o for o in TINY if not o.startswith("data.subset")]
    return load_checked_config(
        method,
        [
            f"out_dir={tmp_path}",
            f"name={name}",
            "data.name=shards",
            f"data.root={shard_dir}",
            "data.shuffle_buffer=64",
            *tiny,
            "train.batch_size=48",
            *extra,
        ],
    )


def test_training_on_shards_resumes_to_identical_weights(shard_dir, tmp_path, monkeypatch):
    ref = train(shard_config(tmp_path, shard_dir, "ref", "train.steps=7", "train.ckpt_every=3"))  # 5 batches per epoch

    real_step = TrainStep.__call__

    def killed_at_step_4(self, batch, step):
        if step == 4:
            raise KeyboardInterrupt("simulated kill")
        return real_step(self, batch, step)

    cfg = shard_config(tmp_path, shard_dir, "killed", "train.steps=7", "train.ckpt_every=3")
    monkeypatch.setattr(TrainStep, "__call__", killed_at_step_4)
    with pytest.raises(KeyboardInterrupt):
        train(cfg)
    assert checkpoint.load(cfg.run_dir / "last.pt")["loader"]["position"] == 3
    monkeypatch.setattr(TrainStep, "__call__", real_step)
    resumed = train(cfg, resume=True)
    a, b = load_file(str(ref / "backbone.safetensors")), load_file(str(resumed / "backbone.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match="evaluation needs an in-memory dataset.*--dataset"):
        evaluate_run(ref, ("knn",))


def test_methods_needing_the_whole_dataset_refuse_shards_before_training(shard_dir, tmp_path):
    cfg = shard_config(tmp_path, shard_dir, "dc", "train.steps=1", method="deepcluster")
    with pytest.raises(ConfigError, match="'deepcluster' needs the whole training set.*on_epoch_start"):
        train(cfg)
    assert not (cfg.run_dir / "last.pt").exists()
    npid = method_from_config(shard_config(tmp_path, shard_dir, "npid", method="npid"), open_shards(shard_dir))
    assert npid.memory.num_samples == N  # memory banks are sized from shards.json
    with pytest.raises(ConfigError, match="data.subset"):
        train(shard_config(tmp_path, shard_dir, "sub", "data.subset=10"))


def test_prepare_shards_command_and_data_speed(tmp_path, capsys):
    out = tmp_path / "cli"
    assert cli(["prepare", "fashion_mnist", "--split", "test", "--shards", str(out), "--images-per-shard", "4000"]) == 0
    info = json.loads((out / "shards.json").read_text())
    assert info["count"] == 10_000 and [s["count"] for s in info["shards"]] == [4000, 4000, 2000]
    assert (info["dataset"], info["split"]) == ("fashion_mnist", "test")
    assert (
        cli(["prepare", "fashion_mnist", "--shards", str(out)]) == 2
        and "already holds shards" in capsys.readouterr().err
    )
    cfg = load_checked_config(
        "rotation", ["data.name=shards", f"data.root={out}", "train.batch_size=64", "train.device=cpu"]
    )
    r = measure_data_speed(cfg, batches=5)
    assert r["loader"] == "ShardLoader" and r["batches"] == 5 and r["images_per_s"] > 0
