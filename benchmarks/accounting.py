"""Speed of every accountant in one run: median seconds of epsilon(...) at 1e3..1e6 steps,
and of noise_multiplier(...). Edgeworth is timed with its per-(q, sigma) cumulants
cached and with a fresh (q, sigma) each call.

    .venv/bin/python benchmarks/accounting.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

from privbias_lib.accounting import AccountingError, epsilon, noise_multiplier
from privbias_lib.accounting.edgeworth import step_cumulants

Q, SIGMA, DELTA = 0.005, 1.0, 1e-5
STEPS = (10**3, 10**4, 10**5, 10**6)
METHODS = ("edgeworth", "edgeworth2", "rdp", "gdp", "prv", "pld")


def median_seconds(fn, repeats: int, fresh_cache: bool = False) -> float:
    """Median wall time of ``fn`` after one untimed warm-up call (NaN if it is refused)."""
    try:
        fn(-1)
    except AccountingError:
        return float("nan")
    times = []
    for i in range(repeats):
        if fresh_cache:
            step_cumulants.cache_clear()
        start = time.perf_counter()
        try:
            fn(i)
        except AccountingError:
            return float("nan")
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    r = args.repeats
    print(f"q={Q}, sigma={SIGMA}, delta={DELTA}; median of {r} runs, milliseconds\n")
    print(f"{'epsilon(...)':28s}" + "".join(f"{f'T=1e{len(str(t)) - 1}':>12s}" for t in STEPS))
    rows = [
        ("edgeworth, new (q, sigma)", "edgeworth", True),
        ("edgeworth, cached", "edgeworth", False),
    ]
    rows += [(m, m, False) for m in METHODS[1:]]
    for label, method, fresh in rows:
        cells = []
        for steps in STEPS:
            ms = 1e3 * median_seconds(
                lambda i, s=steps, m=method: epsilon(Q, SIGMA, s, DELTA, m), r, fresh
            )
            cells.append(f"{ms:12.2f}")
        print(f"{label:28s}" + "".join(cells))
    print(f"\n{'noise_multiplier(eps=8)':28s}{'T=1e4':>12s}")
    for method in ("edgeworth", "rdp", "prv", "pld"):
        ms = 1e3 * median_seconds(
            lambda i, m=method: noise_multiplier(8.0, Q, 10**4, DELTA, m),
            r if method in ("edgeworth", "rdp") else 1,
            fresh_cache=method == "edgeworth",
        )
        print(f"{method:28s}{ms:12.1f}")


if __name__ == "__main__":
    main()
