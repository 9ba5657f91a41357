"""Data-parallel training on 2 CPU processes (gloo) gives what one process gives on the global batch.

Each equality check is ONE function, decorated with ``@two_rank_check``, that
computes global quantities (the loss averaged over ranks, gradients as DDP leaves
them, per-image tensors concatenated over ranks) from a seeded global batch of
which each rank takes its rows. The same function runs once in this process
(world size 1, the reference) and on 2 spawned ranks (all checks in one spawn);
the test compares the results. A new method's check (MoCo's queue, SwAV's
Sinkhorn, a memory bank) is one more decorated function.

BatchNorm computes batch statistics per process, so a method with BN in
training mode does NOT match one process on the global batch (that is what
train.sync_bn is for, on CUDA). The checks here test losses on given
embeddings, and full steps through DDP (SimCLR, SwAV, NPID) with BN in eval
mode (per-image) and fixed views. MoCo is the exception that matches with BN in
training mode: one process with ``shuffle_bn_groups=W`` forms the same BN
batches as W ranks (queries: contiguous slices; keys: slices of the same
seeded permutation).

Random draws inside a step (MoCo's key permutation, the memory bank's
negatives) are pinned so that ranks and the one process draw the same numbers;
see each check's docstring for what that assumes.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import traceback
from datetime import timedelta
from pathlib import Path
from typing import Callable

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from safetensors.torch import load_file

from selfsup.data.batch import Batch
from selfsup.nn.distributed import gather_with_grad, rank, world_size
from selfsup.train.step import TrainStep

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = Path(__file__).resolve().parents[2]  # the checkout, for the torchrun processes
WORLD = 2
GLOBAL_BATCH = 8  # images in the global batch; each of the 2 ranks takes 4

# --- running a function on 2 ranks ----------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _entry(r: int, port: int, fn: Callable, args: tuple) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=r, world_size=WORLD,
                            timeout=timedelta(seconds=60))  # a check that desynchronises fails instead of hanging
    try:
        fn(*args)
    finally:
        dist.destroy_process_group()


def on_two_ranks(fn: Callable, *args) -> None:
    """Run ``fn(*args)`` in 2 fresh processes joined by a gloo group; a rank's exception is raised here."""
    os.environ["OMP_NUM_THREADS"] = "1"  # inherited by the spawned processes
    mp.spawn(_entry, args=(_free_port(), fn, args), nprocs=WORLD, join=True)


def local_rows(x: torch.Tensor) -> torch.Tensor:
    """This rank's rows of a global batch (all of them in one process)."""
    n = x.shape[0] // world_size()
    return x[rank() * n : (rank() + 1) * n]


def mean_over_ranks(x: torch.Tensor) -> torch.Tensor:
    x = x.detach().clone()
    if world_size() > 1:
        dist.all_reduce(x)
        x /= world_size()
    return x


def cat_over_ranks(x: torch.Tensor) -> torch.Tensor:
    """Per-image tensors of all ranks in global order (no gradient)."""
    if world_size() == 1:
        return x.detach().clone()
    parts = [torch.empty_like(x) for _ in range(world_size())]
    dist.all_gather(parts, x.detach().contiguous())
    return torch.cat(parts)


CHECKS: dict[str, Callable[[], dict[str, torch.Tensor]]] = {}


def two_rank_check(fn: Callable[[], dict[str, torch.Tensor]]) -> Callable[[], dict[str, torch.Tensor]]:
    CHECKS[fn.__name__] = fn
    return fn


# --- the checks -----------------------------------------------------------------------------------------------------


@two_rank_check
def gather_with_grad_backward() -> dict[str, torch.Tensor]:
    """Each rank's loss uses its own rows against ALL rows (as contrastive losses do).

    The single-process objective is the sum of the ranks' losses; the gradient a
    rank gets for its rows must equal that objective's gradient for those rows:
    the gather's backward sums over ranks (a mean would be off by the world size).
    """
    g = torch.Generator().manual_seed(1)
    x_global = torch.randn(GLOBAL_BATCH, 5, generator=g)  # (8, 5)
    w = torch.randn(5, 5, generator=g)
    x = local_rows(x_global).clone().requires_grad_()  # (8/W, 5)
    everything = gather_with_grad(x)  # (8, 5)
    loss = torch.tanh(x @ w @ everything.T).pow(2).sum()  # this rank's rows against all rows
    loss.backward()
    return {
        "gathered": everything.detach(),
        "loss_sum": mean_over_ranks(loss) * world_size(),
        "grad": cat_over_ranks(x.grad),
    }


@two_rank_check
def nt_xent_loss_and_gradients() -> dict[str, torch.Tensor]:
    """SimCLR's NT-Xent with every rank's views as negatives, through a shared linear projector.

    DDP averages the parameter gradients over ranks; the loss averaged over ranks
    and those gradients equal the single-process loss and gradients on the global batch.
    """
    from selfsup.losses import nt_xent

    g = torch.Generator().manual_seed(2)
    h1, h2 = torch.randn(2, GLOBAL_BATCH, 6, generator=g)  # two views' pre-logits, (8, 6) each
    proj = torch.nn.Linear(6, 4)
    with torch.no_grad():
        proj.weight.copy_(torch.randn(4, 6, generator=g))
        proj.bias.copy_(torch.randn(4, generator=g))
    loss = nt_xent(proj(local_rows(h1)), proj(local_rows(h2)), temperature=0.3)
    loss.backward()
    grads = {f"grad_{name}": mean_over_ranks(p.grad) for name, p in proj.named_parameters()}  # what DDP does
    return {"loss": mean_over_ranks(loss), **grads}


class FixedViews:
    """Two deterministic views (the image and its mirror), so ranks and one process see the same pixels."""

    mean = std = (0.5, 0.5, 0.5)  # of the normalisation below, for methods that undo it (colorization)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return self.views(images, 1)[0]

    def views(self, images: torch.Tensor, n: int) -> list[torch.Tensor]:
        x = images.float().div(255).sub(0.5).div(0.5)  # (B, 3, H, W)
        return [x, x.flip(3)][:n]

    def view(self, i: int) -> Callable[[torch.Tensor], torch.Tensor]:
        """View ``i`` alone, for methods that call ``augment(images)``."""
        return lambda images: self.views(images, i + 1)[i]

    def views_of(self, n: int) -> Callable[[torch.Tensor], list[torch.Tensor]]:
        """The first ``n`` views, for a method's ``multicrop(images)``."""
        return lambda images: self.views(images, n)


@two_rank_check
def simclr_step_through_ddp() -> dict[str, torch.Tensor]:
    """The loop's route: DDP(method)(batch, step), backward; BN in eval mode so statistics are per image."""
    from selfsup.augment import ViewAugment
    from selfsup.backbones import build_backbone
    from selfsup.methods import build_method
    from selfsup.train import distributed

    torch.manual_seed(3)
    method = build_method("simclr", backbone=build_backbone("resnet18_v1", width=0.125, stem="small"),
                          augment=ViewAugment(size=16), temperature=0.5, proj_hidden_dim=32, proj_dim=16)
    method.augment = FixedViews()
    method = method.to(memory_format=torch.channels_last).eval()  # as the loop does before wrapping
    model = distributed.wrap(method, torch.device("cpu"))  # DDP on 2 ranks, the method itself in one process
    images = torch.randint(
        0, 256, (GLOBAL_BATCH, 3, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(4)
    )
    batch = Batch(local_rows(images), local_rows(torch.arange(GLOBAL_BATCH)))
    out = model(batch, 0)
    out.loss.backward()
    grads = {f"grad_{n}": p.grad.clone() for n, p in method.named_parameters()
             if n.startswith(("projector", "backbone.stages.stem"))}
    return {"loss": mean_over_ranks(out.loss), "embedding": cat_over_ranks(out.embedding), **grads}


def _tiny_backbone():
    from selfsup.backbones import build_backbone

    return build_backbone("resnet18_v1", width=0.125, stem="small")


def _global_images(seed: int) -> torch.Tensor:
    return torch.randint(
        0, 256, (GLOBAL_BATCH, 3, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed)
    )


def _ddp_grads(method: torch.nn.Module, prefixes: tuple[str, ...]) -> dict[str, torch.Tensor]:
    return {f"grad_{n}": p.grad.clone() for n, p in method.named_parameters() if n.startswith(prefixes)}


@two_rank_check
def shuffled_bn_keys_come_back_to_their_rows() -> dict[str, torch.Tensor]:
    """MoCo's shuffling BN with BN in training mode: ranks and one process form the same BN batches.

    Across ranks, the keys of all ranks are gathered, permuted by rank 0's
    ``torch.randperm`` (broadcast), each rank encodes its slice as one BN batch,
    and the keys are gathered back and un-shuffled. One process with
    ``groups=W`` draws the same ``randperm`` (same seed) and encodes the same
    slices as its groups, so every image's key, normalised with the statistics
    of the same other images, must come back to its own row on every rank. The
    queries' ``grouped_forward`` is each rank's own rows, i.e. contiguous groups.
    (The test below checks that the shuffle changes the keys, so this is not
    vacuous, and that the rows are where a hand-made shuffle puts them.)
    """
    from selfsup.nn import grouped_forward, shuffled_forward

    encoder = _bn_encoder()
    x = torch.randn(GLOBAL_BATCH, 3, generator=torch.Generator().manual_seed(5))  # (8, 3)
    torch.manual_seed(6)  # the permutation: rank 0's is broadcast; one process draws the same
    keys = shuffled_forward(encoder, local_rows(x), groups=WORLD)  # (8/W, 4)
    queries = grouped_forward(encoder, local_rows(x), groups=WORLD)
    return {"keys": cat_over_ranks(keys), "queries": cat_over_ranks(queries)}


def _bn_encoder() -> torch.nn.Module:
    torch.manual_seed(7)
    return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4)).train()


@two_rank_check
def moco_step_with_queue_and_shuffled_bn() -> dict[str, torch.Tensor]:
    """MoCo v2's step through DDP with BN in TRAINING mode, shuffled across ranks.

    One process emulates the W devices with ``shuffle_bn_groups=W`` (queries in W
    contiguous BN batches, keys in W shuffled ones, the permutation drawn from
    the same seed), so the loss averaged over ranks and the DDP-averaged
    gradients equal it. Every rank enqueues the keys of ALL ranks in global
    order, so after the step each rank's queue (and pointer) is the one process's.
    """
    from selfsup.augment import ViewAugment
    from selfsup.methods import build_method
    from selfsup.train import distributed

    torch.manual_seed(8)
    method = build_method("moco", backbone=_tiny_backbone(), augment=ViewAugment(size=16), temperature=0.2,
                          momentum=0.99, queue_size=2 * GLOBAL_BATCH, proj_hidden_dim=32, proj_dim=16,
                          shuffle_bn_groups=WORLD)  # ignored on W ranks, which shuffle across ranks
    method.augment = FixedViews()
    method = method.to(memory_format=torch.channels_last).train()
    model = distributed.wrap(method, torch.device("cpu"))
    images = _global_images(9)
    torch.manual_seed(10)  # the key shuffle's permutation
    out = model(Batch(local_rows(images), local_rows(torch.arange(GLOBAL_BATCH))), 0)
    out.loss.backward()
    return {"loss": mean_over_ranks(out.loss), "embedding": cat_over_ranks(out.embedding),
            "queue": method.queue.features.clone(), "queue_ptr": method.queue.ptr.clone(),
            **_ddp_grads(method, ("projector", "backbone.stages.stem"))}


@two_rank_check
def sinkhorn_codes_over_the_global_batch() -> dict[str, torch.Tensor]:
    """SwAV's equipartition holds over the batch of all ranks: 2 ranks x 4 rows give the rows of 1 x 8."""
    from selfsup.nn import sinkhorn_knopp

    scores = _sinkhorn_scores()
    return {"codes": cat_over_ranks(sinkhorn_knopp(local_rows(scores), epsilon=0.05, iterations=3))}


def _sinkhorn_scores() -> torch.Tensor:
    z = torch.nn.functional.normalize(torch.randn(GLOBAL_BATCH, 4, generator=torch.Generator().manual_seed(11)), dim=1)
    c = torch.nn.functional.normalize(torch.randn(5, 4, generator=torch.Generator().manual_seed(12)), dim=1)
    return z @ c.T  # (8, 5) cosine similarities to 5 prototypes


@two_rank_check
def swav_steps_with_queue_through_ddp() -> dict[str, torch.Tensor]:
    """SwAV's swapped prediction through DDP, two steps: the first fills the queue, the second uses it.

    The codes come from Sinkhorn over all ranks' rows (plus the queue); the loss
    averaged over ranks and the prototypes' and projector's DDP-averaged
    gradients equal one process's. The queue holds the embeddings of all ranks
    (``queue_length`` counts them all, as one process's), identical on every rank.
    """
    from selfsup.augment import ViewAugment
    from selfsup.methods import build_method
    from selfsup.train import distributed

    torch.manual_seed(13)
    method = build_method("swav", backbone=_tiny_backbone(), augment=ViewAugment(size=16), n_prototypes=6,
                          proj_hidden_dim=32, proj_dim=8, n_small_crops=0, queue_length=GLOBAL_BATCH,
                          freeze_prototypes_steps=0)
    method.multicrop = FixedViews().views_of(2)  # the two large crops: the image and its mirror
    method = method.to(memory_format=torch.channels_last).eval()  # BN per image
    model = distributed.wrap(method, torch.device("cpu"))
    index = local_rows(torch.arange(GLOBAL_BATCH))
    with torch.no_grad():
        first = model(Batch(local_rows(_global_images(14)), index), 0)  # fills the queue (all 8 images)
    out = model(Batch(local_rows(_global_images(15)), index), 1)  # codes over 8 queued + 8 new rows
    out.loss.backward()
    return {"loss_first": mean_over_ranks(first.loss), "loss": mean_over_ranks(out.loss),
            "queue": method.queue.clone(), **_ddp_grads(method, ("prototypes", "projector"))}


@two_rank_check
def npid_step_and_memory_bank_update_through_ddp() -> dict[str, torch.Tensor]:
    """NPID's NCE step through DDP: the loss, the head's gradients, log Z and the bank after the update.

    Negatives: ``MemoryBank.sample`` draws from each process's own generator,
    which the loop seeds per rank, so ranks draw independent uniform rows: the
    same distribution as one process's draw, but not the same numbers. The check
    pins the draw: every rank takes its rows of one seeded global draw. NCE's
    log Z is estimated on the first batch: the global batch, so every rank
    holds the one process's value. The bank update writes every rank's rows.
    """
    from selfsup.augment import ViewAugment
    from selfsup.methods import build_method
    from selfsup.train import distributed

    n_bank, n_neg = 2 * GLOBAL_BATCH, 5
    torch.manual_seed(16)
    method = build_method("npid", backbone=_tiny_backbone(), augment=ViewAugment(size=16), num_samples=n_bank,
                          embedding_dim=8, num_negatives=n_neg, loss="nce")
    method.augment = FixedViews().view(0)
    negatives = torch.randint(n_bank, (GLOBAL_BATCH, n_neg), generator=torch.Generator().manual_seed(17))
    method.memory.sample = lambda b, n: local_rows(negatives)  # (8/W, 5) this rank's rows of the global draw
    method = method.to(memory_format=torch.channels_last).eval()
    model = distributed.wrap(method, torch.device("cpu"))
    index = torch.randperm(n_bank, generator=torch.Generator().manual_seed(18))[:GLOBAL_BATCH]  # distinct rows
    out = model(Batch(local_rows(_global_images(19)), local_rows(index)), 0)
    out.loss.backward()
    return {"loss": mean_over_ranks(out.loss), "log_z": method.log_z.clone(), "bank": method.memory.bank.clone(),
            **_ddp_grads(method, ("head", "backbone.stages.stem"))}


@two_rank_check
def pirl_infonce_and_memory_bank_update() -> dict[str, torch.Tensor]:
    """PIRL's loss (Eq. 5) in its InfoNCE form, through PIRL's own ``nce`` and ``pirl_loss``, on given features.

    Both terms use one draw of bank negatives (pinned, as in the NPID check);
    the heads f and g get the DDP-averaged gradients; the bank tracks f of every rank's images.
    """
    from selfsup.augment import ViewAugment
    from selfsup.methods import build_method
    from selfsup.methods.pirl import pirl_loss

    n_bank, n_neg = 2 * GLOBAL_BATCH, 6
    torch.manual_seed(20)
    method = build_method("pirl", backbone=_tiny_backbone(), augment=ViewAugment(size=16), num_samples=n_bank,
                          transform="rotation", embedding_dim=8, num_negatives=n_neg, loss="infonce")
    g = torch.Generator().manual_seed(21)
    h, h_t = torch.randn(2, GLOBAL_BATCH, method.backbone.out_dim, generator=g)  # features of I and I^t
    index = torch.randperm(n_bank, generator=g)[:GLOBAL_BATCH]
    negatives = torch.randint(n_bank, (GLOBAL_BATCH, n_neg), generator=g)
    f = torch.nn.functional.normalize(method.f(local_rows(h)), dim=1)  # (8/W, 8)
    gt = torch.nn.functional.normalize(method.g_rotation(local_rows(h_t)), dim=1)
    idx, neg = local_rows(index), local_rows(negatives)
    loss = pirl_loss(method.nce(gt, idx, neg), method.nce(f, idx, neg), method.loss_weight)
    method.memory.update(idx, f)
    loss.backward()
    grads = {f"grad_{n}": mean_over_ranks(p.grad) for n, p in method.named_parameters() if n.startswith(("f.", "g_"))}
    return {"loss": mean_over_ranks(loss), "bank": method.memory.bank.clone(), **grads}


@two_rank_check
def dino_loss_and_center_update() -> dict[str, torch.Tensor]:
    """DINO's loss on given logits (student gradients averaged as DDP) and the centre, a mean of ALL ranks' teachers."""
    from selfsup.losses import dino_loss, update_center

    g = torch.Generator().manual_seed(22)
    teacher = torch.randn(2, GLOBAL_BATCH, 6, generator=g)  # 2 global views' logits, (8, 6) each
    h = torch.randn(3, GLOBAL_BATCH, 5, generator=g)  # 3 views' student features
    head = torch.nn.Linear(5, 6)
    with torch.no_grad():
        head.weight.copy_(torch.randn(6, 5, generator=g))
        head.bias.copy_(torch.randn(6, generator=g))
    center = torch.randn(6, generator=g)
    student = [head(local_rows(v)) for v in h]
    loss = dino_loss(student, [local_rows(t) for t in teacher], center, 0.1, 0.04)
    loss.backward()
    update_center(center, [local_rows(t) for t in teacher], momentum=0.9)
    grads = {f"grad_{n}": mean_over_ranks(p.grad) for n, p in head.named_parameters()}
    return {"loss": mean_over_ranks(loss), "center": center, **grads}


# --- the tests ------------------------------------------------------------------------------------------------------


@two_rank_check
def colorization_step_and_bin_counts() -> dict[str, torch.Tensor]:
    """Colorization's rebalancing counts the true colours seen so far in a buffer: summed over ranks.

    DDP broadcasts rank 0's buffers at each forward, so counts kept per rank
    would lose every other rank's pixels. Every pixel is used
    (``pixels_per_image=None``), so the in-step random pixel order does not matter.
    """
    from selfsup.augment import ViewAugment
    from selfsup.methods import build_method
    from selfsup.train import distributed

    torch.manual_seed(20)
    from selfsup.backbones import build_backbone

    backbone = build_backbone("resnet18_v1", width=0.125, stem="small", in_channels=1)
    method = build_method("colorization", backbone=backbone, augment=ViewAugment(size=16),
                          pixels_per_image=None, hidden_dim=8)
    method.augment = FixedViews()
    method = method.to(memory_format=torch.channels_last).eval()
    model = distributed.wrap(method, torch.device("cpu"))
    images = _global_images(21)
    images[:, 0] = images[:, 0] // 2 + 128  # reddish, so that the images have colour to count
    out = model(Batch(local_rows(images), local_rows(torch.arange(GLOBAL_BATCH))), 0)
    out.loss.backward()
    return {"loss": mean_over_ranks(out.loss), "bin_counts": method.bin_counts.clone(), **_ddp_grads(method, ("head",))}


def _run_checks(out_dir: str) -> None:
    results: dict[str, object] = {}
    for name, fn in CHECKS.items():
        try:
            results[name] = fn()
        except Exception:  # noqa: BLE001 - reported by the test of this check
            results[name] = traceback.format_exc()
    torch.save(results, Path(out_dir) / f"rank{rank()}.pt")


@pytest.fixture(scope="module")
def two_rank_results(tmp_path_factory) -> list[dict]:
    out = tmp_path_factory.mktemp("ranks")
    on_two_ranks(_run_checks, str(out))
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]


@pytest.mark.parametrize("name", list(CHECKS))
def test_two_ranks_match_one_process_on_the_global_batch(name, two_rank_results):
    reference = CHECKS[name]()
    for r, results in enumerate(two_rank_results):
        got = results[name]
        assert not isinstance(got, str), f"rank {r} failed:\n{got}"
        assert got.keys() == reference.keys()
        for key, want in reference.items():
            torch.testing.assert_close(got[key], want, rtol=1e-5, atol=1e-6, msg=lambda m: f"rank {r}, {key}: {m}")


def test_a_gather_whose_backward_averages_would_be_caught(two_rank_results):
    """The gather check can fail: a mean-reducing backward would give 1/W of the reference gradient."""
    reference = CHECKS["gather_with_grad_backward"]()
    got = two_rank_results[0]["gather_with_grad_backward"]["grad"]
    assert not torch.allclose(got / WORLD, reference["grad"], atol=1e-3)


def test_the_shuffled_bn_check_is_not_vacuous():
    """Its reference puts each key where a hand-made shuffle does, and the shuffle changes the keys."""
    reference = CHECKS["shuffled_bn_keys_come_back_to_their_rows"]()
    encoder, x = _bn_encoder(), torch.randn(GLOBAL_BATCH, 3, generator=torch.Generator().manual_seed(5))
    torch.manual_seed(6)
    perm = torch.randperm(GLOBAL_BATCH)
    by_hand = torch.empty(GLOBAL_BATCH, 4)
    with torch.no_grad():
        for rows in perm.chunk(WORLD):  # one BN batch per rank's slice of the shuffled batch
            by_hand[rows] = encoder(x[rows])
        unshuffled = torch.cat([encoder(c) for c in x.chunk(WORLD)])
    torch.testing.assert_close(reference["keys"], by_hand)
    torch.testing.assert_close(reference["queries"], unshuffled)
    assert not torch.allclose(reference["keys"], unshuffled, atol=1e-3)


def test_sinkhorn_on_one_rank_alone_would_be_caught():
    """Without the all-reduce, each half's codes would be equipartitioned on their own: not the global rows."""
    from selfsup.nn import sinkhorn_knopp

    reference = CHECKS["sinkhorn_codes_over_the_global_batch"]()["codes"]
    half = sinkhorn_knopp(_sinkhorn_scores()[: GLOBAL_BATCH // WORLD], epsilon=0.05, iterations=3)
    assert not torch.allclose(half, reference[: GLOBAL_BATCH // WORLD], atol=1e-3)


# --- training on 2 processes: torchrun, one set of outputs, resume --------------------------------------------------

TINY = [
    "data.subset=256",
    "backbone.width=0.125",
    "train.batch_size=32",
    "train.precision=fp32",
    "train.progress=false",
    "train.log_every=1",
    "train.warmup_steps=0",
    "train.steps=3",
    "train.ckpt_every=2",
]


def _train_reference_and_killed_run(out_dir: str) -> None:
    import selfsup.train.loop as loop
    from selfsup.train.build import load_checked_config

    loop.train(load_checked_config("simclr", [f"out_dir={out_dir}", "name=ref", *TINY]))
    real_step = TrainStep.__call__

    def killed_after_the_checkpoint(self, batch, step):
        if step == 2:
            raise KeyboardInterrupt("simulated kill")  # on both ranks, as torchrun stops all when one dies
        return real_step(self, batch, step)

    TrainStep.__call__ = killed_after_the_checkpoint
    try:
        loop.train(load_checked_config("simclr", [f"out_dir={out_dir}", "name=killed", *TINY]))
    except KeyboardInterrupt:
        pass


def test_torchrun_trains_writes_one_set_of_outputs_and_resumes_to_the_same_weights(tmp_path):
    on_two_ranks(_train_reference_and_killed_run, str(tmp_path))
    ref, killed = tmp_path / "ref", tmp_path / "killed"
    assert sorted(p.name for p in ref.iterdir() if p.name != "tb") == [
        ".lock", "backbone.safetensors", "config.yaml", "done.json", "last.pt", "metrics.jsonl"]
    state = torch.load(killed / "last.pt", weights_only=True)
    assert state["step"] == 2 and len(state["rng_ranks"]) == WORLD and state["loader"]["world_size"] == WORLD
    # each rank its own augmentations
    assert not torch.equal(state["rng_ranks"][0]["cpu"], state["rng_ranks"][1]["cpu"])

    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={WORLD}",
           "-m", "selfsup.cli", "train", "simclr", f"out_dir={tmp_path}", "name=killed", *TINY, "--resume"]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.count("finished:") == 1  # printed by rank 0 only

    steps = [json.loads(line)["step"] for line in (killed / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3]  # one log, from rank 0, steps after the checkpoint logged once
    a, b = load_file(str(ref / "backbone.safetensors")), load_file(str(killed / "backbone.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=0, atol=0, msg=lambda m: f"{k}: {m}")


def test_sigterm_to_torchrun_checkpoints_every_rank_at_one_step_and_resume_auto_goes_on(tmp_path):
    """What a preempted multi-process job sees: torchrun passes SIGTERM on to its workers."""
    import signal
    import time

    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    base = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={WORLD}",
            "-m", "selfsup.cli", "train", "simclr", f"out_dir={tmp_path}", "name=pre", *TINY]
    proc = subprocess.Popen([*base, "train.steps=100000", "train.ckpt_every=100000"], env=env,
                            stderr=subprocess.PIPE, text=True)
    metrics = tmp_path / "pre" / "metrics.jsonl"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and proc.poll() is None:
        if metrics.exists() and metrics.read_text().count("\n") >= 2:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert err.count("SIGTERM received: stopped at step") == 1, err[-3000:]  # rank 0 alone prints
    state = torch.load(tmp_path / "pre" / "last.pt", weights_only=True)
    stopped = state["step"]
    assert len(state["rng_ranks"]) == WORLD and f"stopped at step {stopped} " in err
    steps = [json.loads(line)["step"] for line in metrics.read_text().splitlines()]
    assert steps == list(range(1, stopped + 1))

    run = subprocess.run([*base, f"train.steps={stopped + 2}", "train.ckpt_every=100000", "--resume", "auto"],
                         env=env, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stderr[-3000:]
    assert [json.loads(line)["step"] for line in metrics.read_text().splitlines()] == list(range(1, stopped + 3))
