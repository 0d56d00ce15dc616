"""What study 3's trajectories cost on this machine, and what earns the time back.

In one process, on the cpu profile's model and data (SmolLM2-135M, 48 dialogues + canary
lines for training, 32 test dialogues):

1. the training step of each method at the first version's batch of 4 and at the cpu
   profile's 8 (median seconds over ``--steps`` steps after one warm-up step, and per
   padded training token): whether the same tokens cost less in larger batches;
2. the tokens of one epoch with canaries as lines (the cpu profile) and as whole dialogues
   (the first version);
3. one checkpoint's evaluation on the trajectory subset (``TRAJECTORY_TEXTS`` member and
   test dialogues, plus the canaries) against the same evaluation on every dialogue (median
   over ``--repeats``), and their ratio.

    python benchmarks/trajectory_cost.py [--steps 3] [--repeats 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time


def padded_length(tok, data) -> int:
    """Tokens per padded example (a batch is padded to its longest text, about this)."""
    return max(len(t) for t in tok(list(data.train.text))["input_ids"])


def step_times(params, data, spec, steps: int, batch: int) -> tuple[float, float]:
    """Median seconds per step over ``steps`` steps (after one warm-up) and per token."""
    from privbias_lib.models import load_model
    from privbias_lib.repro import set_seed
    from privbias_lib.studies.lora_vs_dp.runs import train_config
    from privbias_lib.training import train_causal_lm

    set_seed(0)
    model, tok = load_model(params.models[0], "causal-lm")
    config = train_config(params, spec)
    config = dataclasses.replace(config, max_steps=steps + 1, batch_size=batch)
    history = train_causal_lm(model, tok, data.train, config).history
    seconds = statistics.median(history.step_seconds[1:])
    return seconds, seconds / (batch * padded_length(tok, data))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    from privbias_lib.models import load_model, load_tokenizer
    from privbias_lib.studies import lora_vs_dp as study
    from privbias_lib.studies.lora_vs_dp.runs import score_model, trajectory_subset

    values = {**study.STUDY.resolve("cpu"), "OUTPUT_DIR": "/tmp/unused"}
    params = study.STUDY.validate(values)
    data = study.load_data(params)
    as_dialogues = study.load_data(study.STUDY.validate({**values, "CANARY_FORMAT": "dialogue"}))
    tok = load_tokenizer(params.models[0])

    print("1. training step (SmolLM2-135M, 2 CPU threads)")
    print(f"{'method':<22}{'batch':>6}{'s/step':>8}{'ms/token':>10}")
    every = study.STUDY.validate({**values, "METHODS": list(study.METHODS)})
    for spec in study.plan_runs(every):
        if spec["label"].startswith("dp_lora") and spec["epsilon"] != 8.0:
            continue  # the same step at every epsilon
        per = {}
        for batch in (4, params.batch_size):
            s, per[batch] = step_times(every, data, spec, args.steps, batch)
            print(f"{spec['label']:<22}{batch:>6}{s:>8.2f}{per[batch] * 1e3:>10.2f}")
        ratio = per[4] / per[params.batch_size]
        print(f"{'':<22}per-token speed-up of batch {params.batch_size} over 4: {ratio:.2f}x")
    for name, d in (("lines", data), ("dialogues", as_dialogues)):
        tokens = sum(len(t) for t in tok(list(d.train.text))["input_ids"])
        print(f"2. one epoch with canaries as {name}: {len(d.train)} texts, {tokens} tokens")

    model, tok = load_model(params.models[0], "causal-lm")
    subset = trajectory_subset(params, data)
    timings = {"subset": [], "all": []}
    for _ in range(args.repeats):
        for name, chosen in (("subset", subset), ("all", None)):
            t0 = time.perf_counter()
            score_model(params, model, tok, data, chosen)
            timings[name].append(time.perf_counter() - t0)
    sub, full = (statistics.median(timings[k]) for k in ("subset", "all"))
    n_sub = sum(len(v) for v in subset.values())
    n_all = len(data.members) + len(data.test)
    print(
        f"3. one checkpoint's evaluation: {n_sub} dialogues {sub:.1f} s, "
        f"all {n_all} dialogues {full:.1f} s: ratio {full / sub:.2f}x"
    )


if __name__ == "__main__":
    main()
