"""Prompted co-reference scoring: the shared-prefix cache and per-question branching of
``privbias_lib.prompting.score_answers`` against scoring every (question, answer) text in
full, on real WinoBias sentences. Times are medians over ``--repeats`` runs in one process;
the ratio is within this run; the largest score difference is printed beside it.

    python benchmarks/prompt_scoring.py                        # SmolLM2 and Gemma-3-270M
    python benchmarks/prompt_scoring.py --items 80 --shots 0 4 8
"""

from __future__ import annotations

import argparse
import statistics
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="+", default=["smollm2-135m-instruct", "gemma3-270m"])
    ap.add_argument("--items", type=int, default=48)
    ap.add_argument("--shots", type=int, nargs="+", default=[0, 4])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=16)
    args = ap.parse_args()

    import numpy as np
    import torch

    from privbias_lib.data import load_winobias
    from privbias_lib.models import load_model, quiet_transformers
    from privbias_lib.prompting import Condition, choose_examples, prompt_texts, score_answers

    items = load_winobias("test").sample(args.items, random_state=0)
    pool = load_winobias("dev")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.items} sentences")
    for name in args.models:
        with quiet_transformers():
            model, tok = load_model(name, "causal-lm", device="cpu")
        chat = bool(tok.chat_template)
        for shots in args.shots:
            cond = Condition(f"{shots}-shot", shots=shots)
            texts = prompt_texts(items, choose_examples(pool, cond, 0), cond, tok, chat)
            times = {True: [], False: []}
            out = {}
            for _ in range(args.repeats):
                for reuse in (True, False):
                    t0 = time.perf_counter()
                    out[reuse] = score_answers(
                        model, tok, texts, chat=chat, batch_size=args.batch_size,
                        reuse_prefix=reuse,
                    )  # fmt: skip
                    times[reuse].append(time.perf_counter() - t0)
            fast, slow = statistics.median(times[True]), statistics.median(times[False])
            diff = float(np.abs(out[True] - out[False]).max())
            print(
                f"{name} ({'chat' if chat else 'plain'}), {shots} shots: cached {fast:.2f} s, "
                f"full texts {slow:.2f} s, speed-up {slow / fast:.1f}x; max difference {diff:.1e}"
            )


if __name__ == "__main__":
    main()
