"""Step time and peak memory of full, LoRA, DP-full and DP-LoRA fine-tuning, and the
speed-up of caching the frozen bottom for top-layer training.

Each configuration runs in its own process (so peak RSS is its own), on fixed batches of
8 examples x 64 tokens (shuffled sampling, so every batch has the same size). The step
time is the median over the measured steps after warm-up. Ratios are within one run.

    python benchmarks/training.py                 # MiniLM and SmolLM2, every DP mode
    python benchmarks/training.py --modes hooks functorch --models minilm-l6
    python benchmarks/training.py --cache-only    # the frozen-bottom cache
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

BATCH, TOKENS = 8, 64
TASKS = {"minilm-l6": "classification", "smollm2-135m-instruct": "causal-lm"}
METHODS = ("full", "lora", "dp-full", "dp-lora")


def _texts(tokenizer, n: int) -> list[str]:
    """Real RedditBias comments, joined until each text has more than TOKENS tokens (the
    comments are short: median 23 tokens), then truncated to TOKENS by the trainer."""
    from privbias_lib.data import load_redditbias

    comments = iter(load_redditbias()["text"])
    out = []
    while len(out) < n:
        text = next(comments)
        while len(tokenizer(text)["input_ids"]) < TOKENS + 2:
            text += " " + next(comments)
        out.append(text)
    return out


def run_one(model_name: str, method: str, mode: str, warmup: int, steps: int) -> dict:
    import pandas as pd
    import torch

    from privbias_lib.models import load_model
    from privbias_lib.training import (
        Full,
        LoRA,
        PrivacyConfig,
        TrainConfig,
        train_causal_lm,
        train_classifier,
    )

    torch.manual_seed(0)
    task = TASKS[model_name]
    model, tok = load_model(
        model_name, task, num_labels=2 if task != "causal-lm" else None, device="cpu"
    )
    n = BATCH * (warmup + steps)
    texts = _texts(tok, n)
    privacy = (
        PrivacyConfig(
            noise_multiplier=1.0, delta=1e-5, poisson_sampling=False, grad_sample_mode=mode
        )
        if method.startswith("dp")
        else None
    )
    cfg = TrainConfig(
        trainable=LoRA(rank=8) if method.endswith("lora") else Full(),
        privacy=privacy,
        batch_size=BATCH,
        max_steps=warmup + steps,
        max_length=TOKENS,
        learning_rate=1e-4,
        progress=False,
    )
    if task == "causal-lm":
        r = train_causal_lm(model, tok, texts, cfg)
    else:
        df = pd.DataFrame({"text": texts, "label": [i % 2 for i in range(len(texts))]})
        r = train_classifier(model, tok, df, cfg)
    h = r.history
    return {
        "model": model_name,
        "method": method,
        "mode": mode if privacy else "-",
        "resolved": h.grad_sample_mode,
        "step_s": statistics.median(h.step_seconds[warmup:]),
        "peak_rss_mb": h.peak_memory_mb,
        "trainable": h.trainable_parameters,
    }


def run_cache(epochs: int, n: int) -> list[dict]:
    """MiniLM, top-1 layer, n RedditBias comments: three trainings on the same inputs
    (like study 1's epsilon sweep), non-private and DP, with and without the cache."""
    import torch
    from transformers.utils import logging as hf_logging

    from privbias_lib.data import load_redditbias
    from privbias_lib.models import load_model
    from privbias_lib.training import PrivacyConfig, TopLayers, TrainConfig, train_classifier
    from privbias_lib.training.frozen import clear_cache

    hf_logging.set_verbosity_error()  # the "classifier newly initialised" report, per load
    df = load_redditbias().sample(n, random_state=0)
    rows = []
    for private in (False, True):
        for cache in (False, True):
            clear_cache()
            t0 = time.perf_counter()
            for sigma in (0.6, 1.0, 2.0):
                torch.manual_seed(0)
                model, tok = load_model("minilm-l6", "classification", num_labels=2, device="cpu")
                cfg = TrainConfig(
                    trainable=TopLayers(1, cache_frozen=cache),
                    batch_size=32,
                    epochs=epochs,
                    max_length=128,
                    progress=False,
                    privacy=PrivacyConfig(
                        noise_multiplier=sigma, delta=1e-5, accountant="rdp", bound_accountant="rdp"
                    )
                    if private
                    else None,
                )
                train_classifier(model, tok, df, cfg)
            rows.append({"private": private, "cache": cache, "seconds": time.perf_counter() - t0})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=list(TASKS))
    ap.add_argument("--methods", nargs="+", default=list(METHODS))
    ap.add_argument("--modes", nargs="+", default=["auto", "hooks", "functorch", "ghost"])
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--cache-only", action="store_true")
    ap.add_argument("--cache-examples", type=int, default=1000)
    ap.add_argument("--one", nargs=3, metavar=("MODEL", "METHOD", "MODE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(run_one(*args.one, args.warmup, args.steps)))
        return

    import torch

    print(f"torch threads: {torch.get_num_threads()}; batch {BATCH} x {TOKENS} tokens")
    if not args.cache_only:
        rows = []
        for model in args.models:
            for method in args.methods:
                modes = args.modes if method.startswith("dp") else ["hooks"]
                for mode in modes:
                    out = subprocess.run(
                        [
                            sys.executable,
                            __file__,
                            "--one",
                            model,
                            method,
                            mode,
                            "--warmup",
                            str(args.warmup),
                            "--steps",
                            str(args.steps),
                        ],
                        capture_output=True,
                        text=True,
                    )
                    if out.returncode != 0:
                        reason = (out.stderr.strip().splitlines() or ["?"])[-1]
                        print(f"{model:24s} {method:8s} {mode:9s} not run: {reason[:160]}")
                        continue
                    row = json.loads(out.stdout.strip().splitlines()[-1])
                    rows.append(row)
                    label = row["mode"] + ("=" + row["resolved"] if row["mode"] == "auto" else "")
                    print(
                        f"{model:24s} {method:8s} {label:10s} {row['step_s']:7.3f} s/step"
                        f"  peak {row['peak_rss_mb']:7.0f} MB  trainable {row['trainable']:,}",
                        flush=True,
                    )
        print("\nDP / non-DP step-time ratios (median step times, same run)")
        by = {(r["model"], r["method"], r["mode"]): r["step_s"] for r in rows}
        for model in args.models:
            for mode in args.modes:
                for base in ("full", "lora"):
                    dp = by.get((model, f"dp-{base}", mode))
                    plain = by.get((model, base, "-"))
                    if dp and plain:
                        print(f"{model:24s} dp-{base}/{base} ({mode}): {dp / plain:.2f}x")
        print("\nFastest exact mode per case (what grad_sample_mode='auto' should pick)")
        for model in args.models:
            for base in ("full", "lora"):
                timed = {
                    m: by[(model, f"dp-{base}", m)]
                    for m in args.modes
                    if m != "auto" and (model, f"dp-{base}", m) in by
                }
                if timed and (model, base, "-") in by:
                    best = min(timed, key=timed.get)
                    ratio = timed[best] / by[(model, base, "-")]
                    print(f"{model:24s} dp-{base}: {best} ({ratio:.2f}x {base})")
    rows = run_cache(epochs=2, n=args.cache_examples)
    t = {(r["private"], r["cache"]): r["seconds"] for r in rows}
    print(f"\nTop-1 MiniLM, {args.cache_examples} comments, 2 epochs, 3 trainings each:")
    for private in (False, True):
        off, on = t[(private, False)], t[(private, True)]
        print(
            f"  {'DP ' if private else 'non-DP'}: uncached {off:.1f} s, cached {on:.1f} s, "
            f"speed-up {off / on:.2f}x"
        )


if __name__ == "__main__":
    main()
