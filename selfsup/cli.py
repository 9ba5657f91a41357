"""``selfsup train | eval | demo | bench | report | backbones | prepare``."""
from __future__ import annotations

import argparse
import sys

from selfsup.registry import ConfigError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="selfsup", description="Self-supervised visual representation learning.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a method: selfsup train CONFIG [key=value ...]")
    p.add_argument("config", help="a YAML file or the name of a bundled config (e.g. simclr, rotation)")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. train.steps=200 backbone.width=0.5")
    p.add_argument("--resume", action="store_true", help="continue the run folder's last checkpoint")

    p = sub.add_parser("eval", help="evaluate a trained run's backbone with the evaluation protocols")
    p.add_argument("run_dir")
    p.add_argument("--protocol", nargs="+", metavar="P",
                   help="any of: knn linear clustering sgd layers fewshot invariance (default: knn, clustering, "
                        "and linear unless the config sets eval.linear: false)")
    p.add_argument("--random-init", action="store_true", help="evaluate the same backbone at random init instead")
    p.add_argument("--dataset", help="transfer: evaluate on this dataset's train/test splits (e.g. mnist, folder)")
    p.add_argument("--data-root", help="the transfer dataset's folder")
    p.add_argument("--train-subset", type=int, help="use only the first N training images (quick looks)")
    p.add_argument("--pool-to", type=int, default=9216, help="per-layer probes: pool each layer to about this many dims")
    p.add_argument("--device", default="cpu")

    p = sub.add_parser("demo", help="train SimCLR on Fashion-MNIST for a few minutes and compare with baselines")
    p.add_argument("overrides", nargs="*", help="key=value overrides of the demo config")
    p.add_argument("--out", default="runs", help="folder for the demo's run")

    p = sub.add_parser("speed", help="images/s, memory and FLOP/s of a config's training step next to its bare backbone")
    p.add_argument("configs", nargs="+", metavar="CONFIG [key=value]",
                   help="one or more YAML files or bundled config names, then key=value overrides applied to each, "
                        "e.g. simclr moco backbone.width=1 train.batch_size=256")
    p.add_argument("--steps", type=int, help="timed steps after warm-up (default 10; with --data-only, batches: default 200)")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first (more with --compile)")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"], help="default: the config's train.precision")
    p.add_argument("--compile", action="store_true", help="torch.compile the backbone (skipped with a message if it fails)")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                   help="default: the config's train.channels_last")
    p.add_argument("--markdown", action="store_true", help="also print a Markdown table row (with its header)")
    p.add_argument("--json", metavar="PATH", help="also write the measurements as JSON")
    p.add_argument("--profile", type=int, default=0, metavar="ROWS",
                   help="also print the ROWS operators with the most self time in 3 full steps (torch.profiler)")
    p.add_argument("--data-only", action="store_true",
                   help="time only the config's training batches: memmap slices, or decoded shards with data.name=shards")

    p = sub.add_parser("bench", help="run a grid of pre-trainings + evaluations (resumable): selfsup bench GRID.yaml")
    p.add_argument("grid", help="a grid YAML file or the name of a bundled grid (tiny, fmnist_small, imagenet_paper)")
    p.add_argument("--out-dir", help="put the cells here instead of the grid's out_dir")
    p.add_argument("--dry-run", action="store_true", help="check the grid and list its cells without running them")

    p = sub.add_parser("report", help="static HTML + Markdown report of the run folders under RUNS_DIR")
    p.add_argument("runs_dir")
    p.add_argument("--out", help="report folder (default: RUNS_DIR/report)")
    p.add_argument("--metric", choices=["auto", "linear_top1", "knn_top1"], default="auto",
                   help="the accuracy rankings use (auto: linear where every run has it, else kNN)")
    p.add_argument("--embed-points", type=int, default=3000, help="test images in each t-SNE map")
    p.add_argument("--max-embed-runs", type=int, default=6, help="runs that get retrieval grids and t-SNE maps")
    p.add_argument("--device", default="cpu")

    p = sub.add_parser("pictures", help="a PNG per pretext task of what it sees (and predicts, given trained runs)")
    p.add_argument("--out", default="pictures", help="folder for the PNGs")
    p.add_argument("--tasks", nargs="+", help="default: every pretext task")
    p.add_argument("--runs", nargs="+", default=[], help="trained run folders whose method's predictions to show")

    sub.add_parser("backbones", help="parameters, FLOPs and CPU speed of every backbone (Markdown table)")
    sub.add_parser("bench-eval", help="time the L-BFGS probe, kNN and k-means on a 60k x 512 feature matrix")

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

    args, rest = parser.parse_known_args(argv)
    if rest and args.command not in ("backbones", "bench-eval"):  # those two pass their own arguments on
        # key=value after an option (`speed simclr --steps 3 train.lr=0.1`) is still an override; anything
        # else is an error rather than silently ignored
        target = "configs" if args.command == "speed" else "overrides"
        if not hasattr(args, target) or not all("=" in a and not a.startswith("-") for a in rest):
            parser.error(f"unrecognized arguments: {' '.join(rest)}")
        getattr(args, target).extend(rest)
    try:
        return _run(args, rest)
    except (ConfigError, FileNotFoundError, FileExistsError, ValueError) as err:
        print(f"selfsup {args.command}: error: {err}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace, rest: list[str]) -> int:
    from selfsup.train.build import keep_freed_cpu_memory

    keep_freed_cpu_memory()  # every command allocates batch-sized CPU buffers over and over
    if args.command == "train":
        from selfsup.config import load_config
        from selfsup.train import distributed
        from selfsup.train.loop import train

        cfg = load_config(args.config, args.overrides)
        finished = False
        try:
            run_dir = train(cfg, resume=args.resume)  # under torchrun, one process per rank joins the group here
            main, finished = distributed.is_main(), True
        finally:
            distributed.shutdown(wait=finished)
        if main:
            print(f"finished: {run_dir}")
    elif args.command == "eval":
        from selfsup.eval.run import evaluate_run, format_results

        results = evaluate_run(args.run_dir, args.protocol and tuple(args.protocol), random_init=args.random_init, dataset=args.dataset,
                               data_root=args.data_root, train_subset=args.train_subset, pool_to=args.pool_to,
                               device=args.device)
        print(format_results(results))
    elif args.command == "demo":
        from selfsup.demo import run_demo

        run_demo(args.overrides, out_dir=args.out)
    elif args.command == "speed":
        from selfsup.config import load_config
        from selfsup.train.bench import format_markdown, format_report, measure_speed

        overrides = [a for a in args.configs if "=" in a]
        results = []
        for name in (a for a in args.configs if "=" not in a):
            if args.data_only:
                from selfsup.train.bench import measure_data_speed

                r = measure_data_speed(load_config(name, overrides), batches=200 if args.steps is None else args.steps)
                results.append(r)
                print(f"{r['loader']} ({r['data']}{', ' + r['root'] if r['root'] else ''}): {r['images_per_s']:.0f} images/s, "
                      f"{r['batches']} batches of {r['batch_size']} in {r['seconds']:.2f} s, {r['threads']} thread(s), {r['device']}")
                continue
            results.append(measure_speed(load_config(name, overrides), steps=10 if args.steps is None else args.steps, warmup=args.warmup,
                                         precision=args.precision, compile=args.compile, channels_last=args.channels_last,
                                         profile=args.profile))
            print(format_report(results[-1]) + "\n", flush=True)
        if args.markdown and not args.data_only:
            print(format_markdown(results))
        if args.json:
            import json
            from pathlib import Path

            Path(args.json).write_text(json.dumps(results if len(results) > 1 else results[0], indent=1))
    elif args.command == "bench":
        from selfsup.grid import load_grid, run_grid

        grid = load_grid(args.grid, out_dir=args.out_dir)
        if args.dry_run:
            for cell in grid.cells:
                print(f"{grid.out_dir / cell.name}  ({cell.config} {' '.join(cell.overrides)})")
            print(f"{len(grid.cells)} cells, protocols: {', '.join(grid.protocols)}")
            return 0
        status = run_grid(grid)
        return 1 if any(r["status"] == "failed" for r in status.values()) else 0
    elif args.command == "report":
        from selfsup.report.html import write_report

        index = write_report(args.runs_dir, out_dir=args.out, metric=args.metric, embed_points=args.embed_points,
                             max_embed_runs=args.max_embed_runs, device=args.device)
        print(f"report written: {index} (and report.md beside it)")
    elif args.command == "pictures":
        from selfsup.pictures.command import write_pictures

        for path in write_pictures(args.out, args.tasks, args.runs):
            print(f"wrote {path}")
    elif args.command == "backbones":
        from selfsup.backbones.profile import main as table

        return table(rest) or 0
    elif args.command == "bench-eval":
        from selfsup.eval.bench import main as bench_eval

        return bench_eval(rest) or 0
    elif args.command == "prepare" and args.shards:
        from selfsup.data import load_dataset
        from selfsup.data.shards import write_shards

        dataset = load_dataset(args.name, root=args.root, split=args.split, resolution=args.resolution)
        out = write_shards(dataset, args.shards, images_per_shard=args.images_per_shard,
                           meta={"dataset": args.name, "split": args.split})
        print(f"{len(dataset)} images written as shards: {out}")
    elif args.command == "prepare":
        from selfsup.data import prepare

        path = prepare(args.name, root=args.root, split=args.split, resolution=args.resolution, cache_dir=args.cache_dir)
        print(f"cache written: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
