"""Load times of the built-in models: first load (GGUF conversion) vs cached loads.

    .venv/bin/python benchmarks/model_loading.py [--repeats 5] [--models ...]

The uncached load runs once per model in a fresh temporary ``PRIVBIAS_CACHE``;
cached loads are repeated and reported as median (min-max), in the same run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--models", nargs="+", default=["minilm-l6", "smollm2-135m-instruct", "gemma3-270m"]
    )
    args = parser.parse_args()
    os.environ["PRIVBIAS_CACHE"] = tempfile.mkdtemp(prefix="privbias-bench-")
    from privbias_lib.models import BUILTIN_MODELS, load_model

    print(f"{'model':24s} {'first load (s)':>15s} {'cached median (s)':>18s} {'range':>14s}")
    for name in args.models:
        task = BUILTIN_MODELS[name].tasks[0]
        kw = {"num_labels": 2} if task == "classification" else {}

        def load(name=name, task=task, kw=kw):
            load_model(name, task, device="cpu", **kw)

        first = timed(load)
        cached = [timed(load) for _ in range(args.repeats)]
        print(
            f"{name:24s} {first:15.2f} {statistics.median(cached):18.2f} "
            f"{min(cached):6.2f}-{max(cached):5.2f}"
        )


if __name__ == "__main__":
    main()
