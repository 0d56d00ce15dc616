"""Exact canary exposure: scoring every candidate secret through the token trie (with the
shared context's key/value cache) against scoring each candidate text in full.

For a secret of d digits after a context, the trie runs one forward step per distinct
proper token prefix (1 + 10 + ... + 10^(d-1) nodes when digits are single tokens) instead
of 10^d full texts. Both give the same ranking (the scores differ by the shared context's
log-likelihood, a constant, checked here). Times are medians over ``--repeats`` runs in
one process; the ratio is within this run.

    python benchmarks/canary_scoring.py                       # SmolLM2, 2 and 3 digits
    python benchmarks/canary_scoring.py --digits 4 --repeats 1 --models gemma3-270m
"""

from __future__ import annotations

import argparse
import statistics
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="+", default=["smollm2-135m-instruct"])
    ap.add_argument("--digits", nargs="+", type=int, default=[2, 3])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=64, help="brute force: texts per batch")
    args = ap.parse_args()

    import numpy as np
    import torch

    from privbias_lib.metrics.memorisation import candidate_logprobs, token_logprobs
    from privbias_lib.models import load_model, quiet_transformers

    context = "Customer: By the way, my account PIN is "
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for name in args.models:
        with quiet_transformers():
            model, tok = load_model(name, "causal-lm", device="cpu")
        for digits in args.digits:
            candidates = [str(i).zfill(digits) for i in range(10**digits)]
            times = {"trie": [], "full texts": []}
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                trie = candidate_logprobs(model, tok, context, candidates)
                times["trie"].append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                texts = [context + c for c in candidates]
                full = token_logprobs(model, tok, texts, batch_size=args.batch_size)
                brute = np.array([lp.sum() for lp in full])
                times["full texts"].append(time.perf_counter() - t0)
            spread = float(np.ptp(trie - brute))
            same = bool(np.argsort(-trie)[:10].tolist() == np.argsort(-brute)[:10].tolist())
            med = {k: statistics.median(v) for k, v in times.items()}
            print(
                f"{name}, {digits} digits ({10**digits} candidates): trie "
                f"{med['trie']:.2f} s, full texts {med['full texts']:.2f} s, speed-up "
                f"{med['full texts'] / med['trie']:.1f}x; score offset spread {spread:.1e}, "
                f"same top 10: {same}"
            )


if __name__ == "__main__":
    main()
