"""Tar shards in WebDataset layout: written from any ImageDataset, streamed back as Batches.

For datasets larger than memory, or spread over nodes: each process reads only
its own shards, front to back, with no random access. The layout is
WebDataset's, so ``webdataset.ShardWriter`` can write shards this reader takes
(give each sample ``__key__`` = its global index, ``png`` and ``cls``; then
``index_shards(DIR)`` writes the ``shards.json`` the reader needs)::

    DIR/shards.json          number of images, per-shard counts, resolution, channels, classes
    DIR/shard-000000.tar     000000.png 000000.cls 000001.png 000001.cls ...
    DIR/shard-000001.tar     ...

A sample is the tar members sharing a key (the file name up to its first dot);
the key is the image's global index, which becomes ``Batch.index`` so memory
banks work as with in-memory data. PNG keeps the uint8 pixels exact; ``.cls``
holds the label as ASCII digits (WebDataset's convention).

Streaming order (after WebDataset): shard i belongs to process i % world_size;
each epoch a process reads its shards in an order drawn from (seed, epoch, rank)
and passes the samples through a shuffle buffer seeded the same way, so an
epoch's batches are a function of the seed alone and a resumed stream replays
(decodes and drops) the batches it had already served, then goes on exactly as
an uninterrupted one would.
"""
from __future__ import annotations

import io
import itertools
import json
import os
import tarfile
import threading
import warnings
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from PIL import Image

from selfsup.data.batch import Batch
from selfsup.data.dataset import STATS_MAX_IMAGES, ImageDataset, check_pixels, to_mode
from selfsup.data.loader import to_device
from selfsup.registry import InputError

SHARDS_JSON = "shards.json"
FORMAT, VERSION = "selfsup-shards", 1
IMAGE_EXTS = {"png": "PNG", "jpg": "JPEG", "jpeg": "JPEG", "webp": "WEBP"}  # extension -> PIL format; we write png
_PNG_LEVEL = 1  # zlib level: slightly larger files than at 6, written much faster, decoded as fast (docs/data.md)


def write_shards(dataset: ImageDataset, out_dir: str | Path, images_per_shard: int = 10_000,
                 meta: dict[str, Any] | None = None) -> Path:
    """Write ``dataset`` as ``out_dir/shard-%06d.tar`` files plus ``shards.json``; return ``out_dir``.

    Each shard is written under a temporary name and renamed when complete,
    ``shards.json`` last, so a killed write never leaves a set a reader trusts.
    ``meta`` (e.g. the dataset's name and split) is stored in ``shards.json``.
    """
    if isinstance(images_per_shard, bool) or not isinstance(images_per_shard, int) or images_per_shard < 1:
        raise InputError(f"images_per_shard must be a positive integer, got {images_per_shard!r}")
    out = Path(out_dir).expanduser()
    if (out / SHARDS_JSON).exists():
        raise FileExistsError(f"{out / SHARDS_JSON} exists: {out} already holds shards; choose another folder")
    out.mkdir(parents=True, exist_ok=True)
    n = len(dataset)
    digits = max(6, len(str(n - 1)))
    shards = []
    for s, start in enumerate(range(0, n, images_per_shard)):
        name = f"shard-{s:06d}.tar"
        tmp = out / f".{name}.tmp"
        with tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as tar:
            for i in range(start, min(start + images_per_shard, n)):
                key = f"{i:0{digits}d}"
                pixels = np.asarray(dataset.images[i])  # (H, W, C) uint8
                png = io.BytesIO()
                Image.fromarray(pixels[:, :, 0] if dataset.channels == 1 else pixels).save(
                    png, "PNG", compress_level=_PNG_LEVEL
                )
                _add_member(tar, f"{key}.png", png.getvalue())
                if dataset.labels is not None:
                    _add_member(tar, f"{key}.cls", str(int(dataset.labels[i])).encode())
        os.replace(tmp, out / name)
        shards.append({"file": name, "count": min(start + images_per_shard, n) - start})
    info = {
        "format": FORMAT, "version": VERSION, **(meta or {}),
        "name": dataset.name, "source": dataset.source, "count": n, "shards": shards,
        "resolution": dataset.resolution, "channels": dataset.channels, "labelled": dataset.labels is not None,
        "classes": dataset.classes, "mean": dataset.mean, "std": dataset.std,
    }  # fmt: skip
    tmp = out / f".{SHARDS_JSON}.tmp"
    tmp.write_text(json.dumps(info, indent=1))
    os.replace(tmp, out / SHARDS_JSON)
    return out


def _add_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    member = tarfile.TarInfo(name)
    member.size, member.mode, member.mtime = len(data), 0o444, 0  # mtime 0: the same data gives the same bytes
    tar.addfile(member, io.BytesIO(data))


@dataclass(frozen=True, eq=False)
class ShardDataset:
    """What ``shards.json`` says about a shard folder: enough to build a method and a ShardLoader.

    It has the length, resolution, channels, classes and pixel statistics of an
    ImageDataset but no ``images``: code that needs the whole dataset at once
    (evaluation, DeepCluster's clustering) needs an in-memory one.
    """

    root: Path
    shards: tuple[tuple[str, int], ...]  # (file name, images) in shard order
    resolution: int
    channels: int
    labelled: bool
    classes: list[str] | None
    mean: list[float]
    std: list[float]
    name: str

    def __len__(self) -> int:
        return sum(count for _, count in self.shards)

    @property
    def num_classes(self) -> int:
        return 0 if self.classes is None else len(self.classes)

    def __repr__(self) -> str:
        size = f"{self.resolution}x{self.resolution}x{self.channels}"
        return f"ShardDataset({str(self.root)!r}, {len(self)} x {size}, {len(self.shards)} shards)"


def open_shards(root: str | Path) -> ShardDataset:
    """Read ``root/shards.json`` and check that every shard it lists is there."""
    root = Path(root).expanduser()
    path = root / SHARDS_JSON
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: {root} is not a shard folder (write one with `selfsup prepare DATASET --shards DIR`)")
    try:
        info = json.loads(path.read_text())
        if info.get("format") != FORMAT or info.get("version") != VERSION:
            raise InputError(f"format {info.get('format')!r} version {info.get('version')!r}, "
                             f"expected {FORMAT!r} version {VERSION}")
        shards = tuple((str(s["file"]), int(s["count"])) for s in info["shards"])
        ds = ShardDataset(root, shards, int(info["resolution"]), int(info["channels"]), bool(info["labelled"]),
                          info.get("classes"), [float(m) for m in info["mean"]], [float(s) for s in info["std"]],
                          str(info.get("name", root.name)))
    except (OSError, ValueError, KeyError, TypeError) as err:  # json.JSONDecodeError is a ValueError
        raise InputError(f"{path} is unreadable: {type(err).__name__}: {err}") from None
    if not shards or sum(c for _, c in shards) != info["count"]:
        raise InputError(
            f"{path}: the shard counts add up to {sum(c for _, c in shards)} images, 'count' says {info['count']}"
        )
    for file, _ in shards:
        if Path(file).name != file or file in ("", ".", ".."):  # "../x.tar", "/abs/x.tar", "sub/x.tar"
            raise InputError(f"{path} lists shard {file!r}: shard files must be plain names inside {root}")
        if not (root / file).is_file():
            raise FileNotFoundError(f"{root / file} not found, but {path} lists it")
    return ds


class ShardLoader:
    """Shuffled epochs of Batches streamed from this process's shards, with resumable position.

    The same interface as BatchLoader: iterating yields the rest of the
    current epoch; ``epoch``, ``position`` (batches of this epoch served) and
    ``state_dict()`` / ``load_state_dict()``. Every process serves the same
    number of batches per epoch (the smallest share, whole batches only), so
    data-parallel ranks stay in step.

    A corrupt sample (an image that does not decode, a bad label or key) is
    skipped and counted in ``skipped``, with a warning naming the shard and
    member the first time it is met; ``corrupt`` maps "shard:member" to the reason.
    An unreadable shard, or a damaged tail, counts every sample it loses. An epoch
    that loses samples this way may end a batch or two early; one that gives no
    batch at all is an error naming the shards and a reason.

    Args:
        dataset: the shard folder, from ``open_shards``.
        batch_size: images per batch.
        device: where the batches land; from pinned memory when it is CUDA.
        seed: the shard-order and shuffle-buffer seed.
        shuffle_buffer: samples held back and drawn from at random; 0 or 1 streams in shard order.
        rank, world_size: this process's shards are those with index i % world_size == rank.
        workers: threads decoding images (Pillow lets go of the GIL while it decodes); 0 decodes in
            the loading thread. The batches are the same for any number.
    """

    def __init__(self, dataset: ShardDataset, batch_size: int, device: torch.device | str = "cpu", seed: int = 0,
                 shuffle_buffer: int = 2000, rank: int = 0, world_size: int = 1, workers: int = 0):
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InputError(f"batch_size must be a positive integer, got {batch_size!r}")
        if isinstance(shuffle_buffer, bool) or not isinstance(shuffle_buffer, int) or shuffle_buffer < 0:
            raise InputError(f"shuffle_buffer must be a non-negative integer, got {shuffle_buffer!r}")
        if not 0 <= rank < world_size:
            raise InputError(f"rank must lie in [0, world_size={world_size}), got {rank}")
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
            raise InputError(f"workers must be a non-negative integer, got {workers!r}")
        if len(dataset.shards) < world_size:
            raise InputError(
                f"{dataset.root} has {len(dataset.shards)} shard(s) for {world_size} processes: every process needs at "
                "least one; write more, smaller shards (selfsup prepare ... --shards DIR --images-per-shard N)"
            )
        self.dataset, self.batch_size, self.device = dataset, batch_size, torch.device(device)
        self.seed, self.shuffle_buffer, self.rank, self.world_size = seed, shuffle_buffer, rank, world_size
        self.workers = workers
        self.mine = dataset.shards[rank::world_size]  # (file, count) of this process's shards
        self._counts = dict(dataset.shards)
        self.size = len(dataset)
        shares = [sum(c for _, c in dataset.shards[r::world_size]) for r in range(world_size)]
        if min(shares) < batch_size:
            raise InputError(f"batch_size={batch_size} exceeds the {min(shares)} images of the smallest share of "
                             f"{dataset.root}'s shards over {world_size} process(es): an epoch would have no batches")
        self.batches_per_epoch = min(shares) // batch_size
        self.epoch, self.position = 0, 0
        self.skipped = 0  # corrupt samples met (each time one is met)
        self.corrupt: dict[str, str] = {}  # "shard:member" -> reason, each warned about once
        self._skip_lock = threading.Lock()  # decoding threads report skips
        self._live: tuple[int, int, Iterator[Batch]] | None = None  # (epoch, position, stream) to continue from

    def __len__(self) -> int:
        return self.batches_per_epoch

    def set_weights(self, weights: np.ndarray | None) -> None:
        """Only None: per-image sampling weights need random access, which a stream does not have."""
        if weights is not None:
            raise InputError("per-image sampling weights (Method.on_epoch_start) need random access to the dataset; "
                             "streamed shards cannot draw images by weight: train from an in-memory dataset")

    def __iter__(self) -> Iterator[Batch]:
        epoch, served, whole = self.epoch, 0, self.position == 0
        stream = self._stream(epoch, self.position)
        for batch in stream:
            served += 1
            self.position += 1  # before yielding: state_dict() read while this batch is in use points past it
            finished = self.position == len(self)
            if finished:
                self.epoch, self.position = epoch + 1, 0
            self._live = None if finished else (epoch, self.position, stream)
            yield batch
            if finished:
                return
        if served == 0 and whole:  # every sample skipped: another epoch would skip them all again, forever
            where, reason = next(iter(self.corrupt.items()), ("", "no sample"))
            raise InputError(
                f"{self.dataset.root}: epoch {epoch} gave no batch of {self.batch_size}: {self.skipped} sample(s) "
                f"skipped, e.g. {where} ({reason}); check the shards and {SHARDS_JSON}"
            )
        self.epoch, self.position, self._live = epoch + 1, 0, None  # ran dry early: corrupt samples were skipped

    def state_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "position": self.position,
            "seed": self.seed,
            "batch_size": self.batch_size,
            "world_size": self.world_size,
            "shuffle_buffer": self.shuffle_buffer,
            "shards": len(self.dataset.shards),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key, mine in (("seed", self.seed), ("batch_size", self.batch_size), ("world_size", self.world_size),
                          ("shuffle_buffer", self.shuffle_buffer), ("shards", len(self.dataset.shards))):
            if state.get(key) != mine:
                raise InputError(f"loader state has {key}={state.get(key)}, this shard loader has {mine}; "
                                 "the batches would differ")
        if not 0 <= state["position"] < len(self):
            raise InputError(f"loader state position={state['position']} is outside an epoch of {len(self)} batches")
        self.epoch, self.position, self._live = int(state["epoch"]), int(state["position"]), None

    def _stream(self, epoch: int, position: int) -> Iterator[Batch]:
        """The batches of ``epoch`` from ``position`` on: the live stream if it is there, else replayed."""
        if self._live is not None and self._live[:2] == (epoch, position):
            return self._live[2]
        samples = self._samples(epoch)
        for _ in range(position * self.batch_size):  # replay what was served (decoding, so skips repeat too)
            next(samples, None)
        return self._batches(samples, len(self) - position)

    def _batches(self, samples: Iterator[tuple[int, np.ndarray, int]], count: int) -> Iterator[Batch]:
        for _ in range(count):
            chunk = [s for _, s in zip(range(self.batch_size), samples)]
            if len(chunk) < self.batch_size:
                return
            pixels = np.stack([px for _, px, _ in chunk])  # (B, H, W, C) uint8
            images = torch.from_numpy(np.ascontiguousarray(pixels.transpose(0, 3, 1, 2)))  # (B, C, H, W)
            index = torch.tensor([i for i, _, _ in chunk], dtype=torch.int64)  # (B,)
            labels = torch.tensor([y for _, _, y in chunk], dtype=torch.int64) if self.dataset.labelled else None
            yield to_device(Batch(images, index, labels), self.device)

    def _samples(self, epoch: int) -> Iterator[tuple[int, np.ndarray, int]]:
        """(global index, pixels (H, W, C), label or -1) of this process's epoch, shuffled, corrupt ones dropped."""
        rng = np.random.default_rng([self.seed, epoch, self.rank])
        order = rng.permutation(len(self.mine))
        raw = (sample for i in order for sample in self._read(self.mine[i][0]))
        for decoded in self._decoded(shuffle_buffer(raw, self.shuffle_buffer, rng)):
            if decoded is not None:
                yield decoded

    def _decoded(
        self, raw: Iterator[tuple[str, str, dict[str, bytes]]]
    ) -> Iterator[tuple[int, np.ndarray, int] | None]:
        """``_decode`` of every sample, in order; on ``workers`` threads, in chunks, a few chunks ahead."""
        if self.workers == 0:
            yield from (self._decode(*sample) for sample in raw)
            return
        chunk = max(1, min(64, self.batch_size // self.workers))

        def decode_all(samples: list) -> list:
            return [self._decode(*sample) for sample in samples]

        with ThreadPoolExecutor(self.workers, thread_name_prefix="selfsup-decode") as pool:
            pending: deque = deque()
            for samples in iter(lambda: list(itertools.islice(raw, chunk)), []):
                pending.append(pool.submit(decode_all, samples))
                if len(pending) >= 2 * self.workers:
                    yield from pending.popleft().result()
            while pending:
                yield from pending.popleft().result()

    def _read(self, shard: str) -> Iterator[tuple[str, str, dict[str, bytes]]]:
        """(shard, key, {extension: bytes}) per sample; an unreadable shard, or its damaged tail, is skipped with a
        warning, and its lost samples (by shards.json's count) are counted in ``skipped``."""
        last, read = "(start)", 0
        try:
            for key, members in tar_samples(self.dataset.root / shard):
                last, read = key, read + 1
                yield shard, key, members
        except (InputError, OSError, tarfile.TarError, EOFError) as err:  # unreadable, or damaged after `last`
            lost = max(1, self._counts[shard] - read)
            self._skip(shard, f"after {last}", f"the rest of the shard ({lost} samples) is unreadable: {err}", lost)

    def _decode(self, shard: str, key: str, members: dict[str, bytes]) -> tuple[int, np.ndarray, int] | None:
        ext = next((e for e in IMAGE_EXTS if e in members), None)
        member = f"{key}.{ext or '*'}"
        try:
            if ext is None:
                raise InputError(f"no image member (.{', .'.join(IMAGE_EXTS)}) among .{', .'.join(members)}")
            index = _global_index(key, self.dataset.root / shard)
            if not 0 <= index < self.size:
                raise InputError(f"key {key} is outside the dataset's {self.size} global indices")
            pixels = decode_image(members[ext], ext, self.dataset.channels)  # (H, W, C) uint8
            if pixels.shape[:2] != (self.dataset.resolution,) * 2:
                raise InputError(
                    f"image is {pixels.shape[1]}x{pixels.shape[0]}, shards.json says {self.dataset.resolution} px"
                )
            label = -1
            if self.dataset.labelled:
                member = f"{key}.cls"
                if "cls" not in members:
                    raise InputError("missing, and shards.json says the images are labelled")
                label = int(members["cls"].decode().strip())
                if not 0 <= label < (self.dataset.num_classes or label + 1):
                    raise InputError(f"label {label} is outside [0, {self.dataset.num_classes})")
        except Exception as err:  # noqa: BLE001 - a damaged sample must never stop training
            self._skip(shard, member, f"{type(err).__name__}: {err}")
            return None
        return index, pixels, label

    def _skip(self, shard: str, member: str, reason: str, samples: int = 1) -> None:
        where = f"{shard}:{member}"
        with self._skip_lock:
            self.skipped += samples
            first = where not in self.corrupt
            self.corrupt.setdefault(where, reason)
        if first:
            warnings.warn(f"{self.dataset.root / shard}: skipping corrupt member {member} ({reason})", stacklevel=2)


def tar_samples(path: Path) -> Iterator[tuple[str, dict[str, bytes]]]:
    """(key, {extension: bytes}) per sample of a WebDataset tar, front to back (members of a sample are adjacent)."""
    try:
        tar = tarfile.open(path, mode="r|")  # a stream: no seeking, so pipes and network files work too
    except (OSError, tarfile.TarError) as err:
        raise InputError(f"{path} is unreadable as a tar file: {err}") from None
    key, members = None, {}
    with tar:
        for member in tar:
            if not member.isfile():
                continue
            folder, _, base = member.name.rpartition("/")
            stem, _, ext = base.partition(".")  # WebDataset: the key ends at the first dot of the file name
            k = f"{folder}/{stem}" if folder else stem
            if k != key and key is not None:
                yield key, members
                members = {}
            key = k
            members[ext.lower()] = tar.extractfile(member).read()
    if key is not None:
        yield key, members


def decode_image(data: bytes, ext: str, channels: int) -> np.ndarray:
    """Encoded image bytes -> (H, W, channels) uint8, converting grey/colour as needed."""
    mode = "L" if channels == 1 else "RGB"
    with Image.open(io.BytesIO(data), formats=(IMAGE_EXTS[ext],)) as img:  # the format named: PIL probes no others
        check_pixels(img, "image")
        pixels = np.asarray(to_mode(img, mode))
    return pixels.reshape(*pixels.shape[:2], channels)


def index_shards(shard_dir: str | Path, classes: list[str] | None = None, channels: int = 3, name: str = "shards",
                 stats_images: int = STATS_MAX_IMAGES) -> Path:
    """Write ``shards.json`` for WebDataset tars made elsewhere (e.g. by ``webdataset.ShardWriter``).

    One pass over every ``*.tar`` in the folder (in name order) counts its
    samples; the resolution comes from the first image, the pixel mean/std from
    the first ``stats_images`` images. Keys must be the images' global indices,
    0 .. N-1 each once: a key the reader could not serve is an error naming it.
    """
    root = Path(shard_dir).expanduser()
    files = sorted(p.name for p in root.glob("*.tar"))
    if not files:
        raise FileNotFoundError(f"{root} holds no .tar files to index")
    shards, first, labelled, total, sums, keys = [], None, True, 0, np.zeros((2, channels)), []
    for file in files:
        count = 0
        for key, members in tar_samples(root / file):
            ext = next((e for e in IMAGE_EXTS if e in members), None)
            if ext is None:
                raise InputError(f"{root / file}: sample {key} has no image member (.{', .'.join(IMAGE_EXTS)})")
            if total + count < stats_images or first is None:
                pixels = decode_image(members[ext], ext, channels).astype(np.float64) / 255.0  # (H, W, C)
                if pixels.shape[0] != pixels.shape[1]:
                    raise InputError(
                        f"{root / file}: sample {key} is {pixels.shape[1]}x{pixels.shape[0]}; images must be square"
                    )
                first = first or pixels.shape[0]
                sums += [pixels.mean(axis=(0, 1)), np.square(pixels).mean(axis=(0, 1))]
            labelled = labelled and "cls" in members
            keys.append(_global_index(key, root / file))
            count += 1
        shards.append({"file": file, "count": count})
        total += count
    order = np.sort(np.asarray(keys, dtype=np.int64))
    if not np.array_equal(order, np.arange(total)):
        bad = order[np.flatnonzero(order != np.arange(total))[0]]
        raise InputError(f"{root}: sample keys must be the global indices 0..{total - 1}, each once; key {bad} "
                         f"{'repeats' if (order == bad).sum() > 1 else 'is out of that range'} (name samples by index)")
    mean = sums[0] / min(total, stats_images)
    std = np.sqrt(np.maximum(sums[1] / min(total, stats_images) - mean**2, 0.0))
    info = {"format": FORMAT, "version": VERSION, "name": name, "source": str(root), "count": total, "shards": shards,
            "resolution": first, "channels": channels, "labelled": labelled, "classes": classes,
            "mean": mean.tolist(), "std": std.tolist()}
    (root / SHARDS_JSON).write_text(json.dumps(info, indent=1))
    return root


def _global_index(key: str, shard: Path) -> int:
    """A sample key's global index (the key's last path part, in decimal digits)."""
    digits = key.rpartition("/")[2]
    if not digits.isdigit():
        raise InputError(f"{shard}: sample key {key!r} is not a global index (decimal digits, e.g. 000123); "
                         "write the shards with __key__ = f'{index:06d}'")
    return int(digits)


def shuffle_buffer(items: Iterator, size: int, rng: np.random.Generator) -> Iterator:
    """Shuffle a stream through a buffer of ``size`` items: each new item replaces a random one, sent on."""
    if size <= 1:
        yield from items
        return
    buffer: list = []
    for item in items:
        if len(buffer) < size:
            buffer.append(item)
            continue
        j = int(rng.integers(size))
        yield buffer[j]
        buffer[j] = item
    rng.shuffle(buffer)
    yield from buffer
