"""DP-SGD step time of study 1's recipes with and without length-sorted chunks.

RedditBias comments are short (median 23 tokens) but a random batch pads to its longest
(about 47 tokens at batch 256). ``TrainConfig.length_chunks`` sorts each logical batch by
length and runs it in chunks, each padded only to its own longest: the same summed clipped
gradient and noise for less work. This trains MiniLM's top layer on the cached frozen
bottom (study 1's setup) at epsilon 1 for a fixed number of steps per setting, and prints
the median step time and its ratio to the unchunked run of the same batch size, all in
one process.

    python benchmarks/length_chunks.py
    python benchmarks/length_chunks.py --steps 30 --batches 64 512 --chunks 16 32 64
"""

from __future__ import annotations

import argparse
import statistics


def step_times(train, validation, batch: int, chunks: int | None, steps: int) -> list[float]:
    from privbias_lib.models import load_model, quiet_transformers
    from privbias_lib.repro import set_seed
    from privbias_lib.training import PrivacyConfig, TopLayers, TrainConfig, train_classifier

    set_seed(0)
    with quiet_transformers():
        model, tok = load_model("minilm-l6", "classification", num_labels=2)
    config = TrainConfig(
        trainable=TopLayers(1, cache_frozen=True),
        learning_rate=0.01,
        batch_size=batch,
        length_chunks=chunks,
        max_steps=steps,
        max_length=128,
        privacy=PrivacyConfig(target_epsilon=1.0, delta=1e-6, accountant="rdp"),
        progress=False,
    )
    result = train_classifier(model, tok, train, config, validation=None)
    return result.history.step_seconds[2:]  # the first steps warm up


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batches", type=int, nargs="+", default=[64, 512])
    parser.add_argument("--chunks", type=int, nargs="+", default=[16, 32, 64])
    args = parser.parse_args()

    from privbias_lib.data import load_redditbias

    train = load_redditbias()  # every labelled comment (about 11,500)
    step_times(train, None, 64, None, 3)  # fills the frozen-bottom cache
    print(f"{'batch':>6} {'chunks':>7} {'median step s':>14} {'vs unchunked':>13}")
    for batch in args.batches:
        base = statistics.median(step_times(train, None, batch, None, args.steps))
        print(f"{batch:>6} {'none':>7} {base:>14.3f} {1.0:>12.2f}x")
        for chunks in args.chunks:
            if chunks >= batch:
                continue
            t = statistics.median(step_times(train, None, batch, chunks, args.steps))
            print(f"{batch:>6} {chunks:>7} {t:>14.3f} {base / t:>12.2f}x")


if __name__ == "__main__":
    main()
