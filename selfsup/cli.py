"""The ``selfsup`` command line, one small function per command.

    selfsup train CONFIG [key=value ...]   train a method (a bundled config name or a YAML file)
    selfsup eval RUN_DIR                   the evaluation protocols on a run's backbone -> RUN_DIR/eval.json
    selfsup demo                           SimCLR on Fashion-MNIST for a few minutes, against two baselines
    selfsup speed CONFIG ...               images/s, memory and FLOP/s of a training step vs its bare backbone
    selfsup grid GRID                      a resumable grid of pre-trainings and evaluations
    selfsup report RUNS_DIR                static HTML + Markdown report of the runs under a folder
    selfsup leaderboard [GRID_DIR]         result files of the leaderboard grid, and its generated tables
    selfsup tuning [GRID_DIR]              result files of a tuning grid (validation only), docs/tuning.md
    selfsup pictures                       a PNG per pretext task of what it sees (and predicts)
    selfsup backbones                      parameters, FLOPs and CPU speed of every backbone
    selfsup eval-timing                    timing of the L-BFGS probe, kNN and k-means at a run's size
    selfsup prepare DATASET                decode a dataset once into a uint8 memmap (or tar shards)

Bad input (a config key, a file, a value) is reported in one line with exit status 2;
anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from selfsup.registry import InputError, Preempted, RunStopped

INTERRUPTED_STATUS = 130  # what a shell reports for a Ctrl-C'd command


def train(args: argparse.Namespace) -> int:
    from selfsup.train import distributed
    from selfsup.train.build import load_checked_config
    from selfsup.train.loop import train as train_run

    if args.resume not in (True, False, "auto"):  # `--resume train.steps=5`: the value is an override
        args.overrides.insert(0, args.resume)
        args.resume = True
    cfg = load_checked_config(args.config, args.overrides)
    finished = False
    try:
        run_dir = train_run(cfg, resume=args.resume)  # under torchrun, one process per rank joins the group here
        main, finished = distributed.is_main(), True
    finally:
        distributed.shutdown(wait=finished)
    if main:
        print(f"finished: {run_dir}")
    return 0


def evaluate(args: argparse.Namespace) -> int:
    from selfsup.runs.evaluate import evaluate_run, format_results

    results = evaluate_run(args.run_dir, args.protocol and tuple(args.protocol), random_init=args.random_init,
                           dataset=args.dataset, data_root=args.data_root, train_subset=args.train_subset,
                           pool_to=args.pool_to, device=args.device, split=args.split)
    print(format_results(results))
    return 0


def demo(args: argparse.Namespace) -> int:
    from selfsup.runs.demo import run_demo

    run_demo(args.overrides, out_dir=args.out)
    return 0


def speed(args: argparse.Namespace) -> int:
    from selfsup.train.build import load_checked_config
    from selfsup.train.speed import format_markdown, format_report, measure_data_speed, measure_speed

    overrides = [a for a in args.configs if "=" in a]
    results = []
    for name in (a for a in args.configs if "=" not in a):
        cfg = load_checked_config(name, overrides)
        if args.data_only:
            r = measure_data_speed(cfg, batches=200 if args.steps is None else args.steps)
            print(
                f"{r['loader']} ({r['data']}{', ' + r['root'] if r['root'] else ''}): "
                f"{r['images_per_s']:.0f} images/s, {r['batches']} batches of {r['batch_size']} in "
                f"{r['seconds']:.2f} s, {r['threads']} thread(s), {r['device']}"
            )
        else:
            r = measure_speed(cfg, steps=10 if args.steps is None else args.steps, warmup=args.warmup,
                              precision=args.precision, compile=args.compile, channels_last=args.channels_last,
                              profile=args.profile)
            print(format_report(r) + "\n", flush=True)
        results.append(r)
    if args.markdown and not args.data_only:
        print(format_markdown(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results if len(results) > 1 else results[0], indent=1))
    return 0


def grid(args: argparse.Namespace) -> int:
    from selfsup.runs.grid import load_grid, run_grid

    g = load_grid(args.grid, out_dir=args.out_dir)
    if args.only:
        from fnmatch import fnmatch

        g.cells = [c for c in g.cells if any(fnmatch(c.name, pattern) for pattern in args.only)]
        if not g.cells:
            raise InputError(f"--only {' '.join(args.only)}: no cell of {args.grid} matches")
    if args.dry_run:
        for cell in g.cells:
            print(f"{g.out_dir / cell.name}  ({cell.config} {' '.join(cell.overrides)})")
        print(f"{len(g.cells)} cells, protocols: {', '.join(g.protocols)}")
        return 0
    status = run_grid(g)
    return 1 if any(r["status"] == "failed" for r in status.values()) else 0


def report(args: argparse.Namespace) -> int:
    from selfsup.runs.report.html import write_report

    index = write_report(args.runs_dir, out_dir=args.out, metric=args.metric, embed_points=args.embed_points,
                         max_embed_runs=args.max_embed_runs, device=args.device)
    print(f"report written: {index} (and report.md beside it)")
    return 0


def leaderboard(args: argparse.Namespace) -> int:
    from selfsup.runs.report import leaderboard as lb

    results = Path(args.results) if args.results else lb.RESULTS_DIR
    if args.grid_dir:
        for path in lb.collect(Path(args.grid_dir), results):
            print(f"wrote {path}")
    lb.write_docs(results, Path(args.doc) if args.doc else lb.DOC, None if args.no_readme else lb.README)
    print(f"leaderboard written: {args.doc or lb.DOC}" + ("" if args.no_readme else f" and {lb.README}'s table"))
    return 0


def tuning(args: argparse.Namespace) -> int:
    from selfsup.runs.report import tuning as tu

    results = Path(args.results) if args.results else tu.RESULTS_DIR
    if args.grid_dir:
        for path in tu.collect(Path(args.grid_dir), results):
            print(f"wrote {path}")
    tu.write_docs(results, Path(args.doc) if args.doc else tu.DOC)
    print(f"tuning page written: {args.doc or tu.DOC}")
    return 0


def pictures(args: argparse.Namespace) -> int:
    from selfsup.runs.pictures.command import write_pictures

    for path in write_pictures(args.out, args.tasks, args.runs):
        print(f"wrote {path}")
    return 0


def backbones(args: argparse.Namespace, rest: list[str]) -> int:
    from selfsup.backbones.profile import main as table

    return table(rest) or 0


def eval_timing(args: argparse.Namespace, rest: list[str]) -> int:
    from selfsup.eval.timing import main as timing

    return timing(rest) or 0


def prepare(args: argparse.Namespace) -> int:
    from selfsup.data import load_dataset
    from selfsup.data import prepare as prepare_cache
    from selfsup.data.shards import write_shards

    if args.shards:
        dataset = load_dataset(args.name, root=args.root, split=args.split, resolution=args.resolution)
        out = write_shards(dataset, args.shards, images_per_shard=args.images_per_shard,
                           meta={"dataset": args.name, "split": args.split})
        print(f"{len(dataset)} images written as shards: {out}")
    else:
        path = prepare_cache(args.name, root=args.root, split=args.split, resolution=args.resolution,
                             cache_dir=args.cache_dir)
        print(f"cache written: {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from selfsup.runs.evaluate import protocols_help

    parser = argparse.ArgumentParser(prog="selfsup", description="Self-supervised visual representation learning.",
                                     epilog="`selfsup COMMAND --help` tells more of each.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("train", help="train a method: selfsup train CONFIG [key=value ...]")
    p.add_argument("config", help="a YAML file or the name of a bundled config (e.g. simclr, rotation)")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. train.steps=200 backbone.width=0.5")
    p.add_argument("--resume", nargs="?", const=True, default=False, metavar="auto",
                   help="continue the run folder's last checkpoint; `--resume auto`: continue it if there is one, else "
                        "start (what a requeued job runs, docs/hardening.md#preemption)")
    p.set_defaults(run=train)

    p = sub.add_parser("eval", help="evaluate a trained run's backbone with the evaluation protocols")
    p.add_argument("run_dir")
    p.add_argument(
        "--protocol",
        nargs="+",
        metavar="P",
        help=f"any of: {protocols_help().replace('%', '%%')} "
        "(default: knn, linear, clustering; no linear if the config sets eval.linear: false)",
    )
    p.add_argument("--random-init", action="store_true", help="evaluate the same backbone at random init instead")
    p.add_argument("--split", help="the split scored: val (held out of the training split; for every choice) or "
                   "test (final numbers only); default: the config's data.eval_split, test. Results of val go to "
                   "eval_val.json")
    p.add_argument("--dataset", help="transfer: evaluate on this dataset's train/test splits (e.g. mnist, folder)")
    p.add_argument("--data-root", help="the transfer dataset's folder")
    p.add_argument("--train-subset", type=int, help="use only the first N training images (quick looks)")
    p.add_argument(
        "--pool-to", type=int, default=9216, help="per-layer probes: pool each layer to about this many dims"
    )
    p.add_argument("--device", default="auto", help="auto (CUDA when there is one), cpu, cuda, cuda:N")
    p.set_defaults(run=evaluate)

    p = sub.add_parser("demo", help="train SimCLR on Fashion-MNIST for a few minutes and compare with baselines")
    p.add_argument("overrides", nargs="*", help="key=value overrides of the demo config")
    p.add_argument("--out", default="runs", help="folder for the demo's run")
    p.set_defaults(run=demo)

    p = sub.add_parser(
        "speed", help="images/s, memory and FLOP/s of a config's training step next to its bare backbone"
    )
    p.add_argument("configs", nargs="+", metavar="CONFIG [key=value]",
                   help="one or more YAML files or bundled config names, then key=value overrides applied to each, "
                        "e.g. simclr moco backbone.width=1 train.batch_size=256")
    p.add_argument(
        "--steps", type=int, help="timed steps after warm-up (default 10; with --data-only, batches: default 200)"
    )
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first (more with --compile)")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"], help="default: the config's train.precision")
    p.add_argument(
        "--compile", action="store_true", help="torch.compile the backbone (skipped with a message if it fails)"
    )
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                   help="default: the config's train.channels_last")
    p.add_argument("--markdown", action="store_true", help="also print a Markdown table row (with its header)")
    p.add_argument("--json", metavar="PATH", help="also write the measurements as JSON")
    p.add_argument("--profile", type=int, default=0, metavar="ROWS",
                   help="also print the ROWS operators with the most self time in 3 full steps (torch.profiler)")
    p.add_argument(
        "--data-only",
        action="store_true",
        help="time only the config's training batches: memmap slices, or decoded shards with data.name=shards",
    )
    p.set_defaults(run=speed)

    p = sub.add_parser("grid", aliases=["bench"], help="run a grid of pre-trainings + evaluations (resumable)")
    p.add_argument("grid", help="a grid YAML file or the name of a bundled grid (tiny, fmnist_small, imagenet_paper)")
    p.add_argument("--out-dir", help="put the cells here instead of the grid's out_dir")
    p.add_argument("--dry-run", action="store_true", help="check the grid and list its cells without running them")
    p.add_argument("--only", nargs="+", metavar="GLOB", help="run only the cells whose names match, e.g. 'moco*'")
    p.set_defaults(run=grid)

    p = sub.add_parser("report", help="static HTML + Markdown report of the run folders under RUNS_DIR")
    p.add_argument("runs_dir")
    p.add_argument("--out", help="report folder (default: RUNS_DIR/report)")
    p.add_argument("--metric", choices=["auto", "linear_top1", "knn_top1"], default="auto",
                   help="the accuracy rankings use (auto: linear where every run has it, else kNN)")
    p.add_argument("--embed-points", type=int, default=3000, help="test images in each t-SNE map")
    p.add_argument("--max-embed-runs", type=int, default=6, help="runs that get retrieval grids and t-SNE maps")
    p.add_argument("--device", default="cpu", help="where runs' features are extracted (cpu, cuda, cuda:N)")
    p.set_defaults(run=report)

    p = sub.add_parser("leaderboard", help="result files of a finished leaderboard grid, and the tables made from them")
    p.add_argument("grid_dir", nargs="?", help="the grid's folder (runs/grids/leaderboard): write a result file per "
                   "finished cell first; without it, only regenerate the tables from the result files")
    p.add_argument("--results", help="result-file folder (default: docs/results/leaderboard)")
    p.add_argument("--doc", help="the markdown page written (default: docs/leaderboard.md)")
    p.add_argument("--no-readme", action="store_true", help="leave README.md's methods table as it is")
    p.set_defaults(run=leaderboard)

    p = sub.add_parser("tuning", help="result files of a finished tuning grid (validation only), and docs/tuning.md")
    p.add_argument("grid_dir", nargs="?", help="the grid's folder (runs/grids/tune): write a result file per finished "
                   "variant first; without it, only regenerate the page from the result files")
    p.add_argument("--results", help="result-file folder (default: docs/results/tuning)")
    p.add_argument("--doc", help="the markdown page written (default: docs/tuning.md)")
    p.set_defaults(run=tuning)

    p = sub.add_parser("pictures", help="a PNG per pretext task of what it sees (and predicts, given trained runs)")
    p.add_argument("--out", default="pictures", help="folder for the PNGs")
    p.add_argument("--tasks", nargs="+", help="default: every pretext task")
    p.add_argument("--runs", nargs="+", default=[], help="trained run folders whose method's predictions to show")
    p.set_defaults(run=pictures)

    sub.add_parser("backbones", help="parameters, FLOPs and CPU speed of every backbone (Markdown table)",
                   add_help=False).set_defaults(run=backbones)
    sub.add_parser(
        "eval-timing",
        aliases=["bench-eval"],
        add_help=False,
        help="time the L-BFGS probe, kNN and k-means on a 60k x 512 feature matrix",
    ).set_defaults(run=eval_timing)

    p = sub.add_parser("prepare", help="decode a dataset once into a uint8 memory-mapped cache (or tar shards)")
    p.add_argument("name")
    p.add_argument("--root")
    p.add_argument("--split", default="train")
    p.add_argument("--resolution", type=int)
    p.add_argument("--cache-dir", default=".cache/selfsup")
    p.add_argument("--shards", metavar="OUT_DIR",
                   help="write WebDataset-layout tar shards + shards.json here instead, to train with "
                        "data.name=shards data.root=OUT_DIR")
    p.add_argument("--images-per-shard", type=int, default=10_000, help="with --shards: images in each tar")
    p.set_defaults(run=prepare)
    return parser


def main(argv: list[str] | None = None) -> int:
    from selfsup.hardware import choose_threads, keep_freed_cpu_memory

    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    pass_through = args.run in (backbones, eval_timing)  # commands with argument parsers of their own
    if rest and not pass_through:
        # key=value after an option (`speed simclr --steps 3 train.lr=0.1`) is still an override; anything
        # else is an error rather than silently ignored
        target = "configs" if args.run is speed else "overrides"
        if not hasattr(args, target) or not all("=" in a and not a.startswith("-") for a in rest):
            parser.error(f"unrecognized arguments: {' '.join(rest)}")
        getattr(args, target).extend(rest)
    keep_freed_cpu_memory()  # every command allocates batch-sized CPU buffers over and over
    try:
        choose_threads()  # no more threads than idle cores, so a busy core cannot stall every step
        return args.run(args, rest) if pass_through else args.run(args)
    except (InputError, FileNotFoundError, FileExistsError) as err:
        print(f"selfsup {args.command}: error: {err}", file=sys.stderr)
        return 2
    except RunStopped as err:  # a NaN loss, a signal, a full disk: the message says what is kept and what to do
        if os.environ.get("RANK", "0") == "0" or not isinstance(err, Preempted):  # every rank stops: say it once
            print(f"selfsup {args.command}: {err}", file=sys.stderr)
        return err.exit_status
    except KeyboardInterrupt:
        print(f"selfsup {args.command}: interrupted", file=sys.stderr)
        return INTERRUPTED_STATUS


if __name__ == "__main__":
    sys.exit(main())
