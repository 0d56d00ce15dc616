"""Study 1's `paper` recipe on a GPU: the CUDA path checked, and what a full run costs.

Takes notebooks/params/01_dp_bias/paper.yaml as it is (bert-base, top encoder layer +
pooler + classifier, logical batch 64 in physical chunks of 32, max length 128, no frozen
cache, DP at delta 1e-6 with Poisson sampling) and changes only what a machine without hub
access needs: the model may be a local folder (``--model``) or a randomly initialised
bert-base-uncased (``--random-bert-base``: the same architecture and vocabulary, so the
same cost; the AUCs are then meaningless), the data is the offline RedditBias, and one
epoch of one seed runs for the non-private model and one epsilon.

It prints, per run: steps, seconds per step, peak GPU memory, epsilon (calibrating
accountant and bound), test AUC; first, on the same model and device, the relative error
between DP-SGD's summed per-sample gradient (sigma = 0, no clipping reached) and autograd
for every grad-sample mode; after the runs, whether a rerun of the DP run reproduces its
test scores exactly (seeded, deterministic kernels). Finally it projects a
paper-profile run (Jigsaw, 10 epochs, 5 epsilons + non-private, 3 seeds) from the measured
step time.

    python benchmarks/dp_bias_paper_recipe.py --random-bert-base --tokenizer PATH
    python benchmarks/dp_bias_paper_recipe.py --model google-bert/bert-base-uncased
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

JIGSAW_TRAIN = 1_804_874  # rows of the Kaggle train.csv; the study trains on 70 % of them


def random_bert_base(tokenizer: Path, folder: Path) -> Path:
    """A bert-base-uncased-shaped classifier with random weights, in the hub's layout."""
    import shutil

    import torch
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(num_labels=2))
    model.save_pretrained(folder)
    for f in tokenizer.iterdir():
        shutil.copy(f, folder / f.name)
    return folder


def gradient_check(model_name: str, device: str, texts: list[str], labels: list[int]) -> None:
    """DP-SGD's summed per-sample gradient with sigma = 0 equals autograd's, per mode."""
    from _dp_checks import dropout_off, summed_gradient_errors

    from privbias_lib.models import load_model, quiet_transformers
    from privbias_lib.training.batches import encode_classification

    with quiet_transformers():
        base, tok = load_model(model_name, "classification", num_labels=2, device=device)
    dropout_off(base)
    top = f"bert.encoder.layer.{base.config.num_hidden_layers - 1}."
    for name, p in base.named_parameters():  # the study's recipe: top layer + head
        p.requires_grad = name.startswith((top, "bert.pooler", "classifier"))
    encoded = encode_classification(tok, texts, labels, 128)
    for mode, err in summed_gradient_errors(
        base, encoded, device, ("hooks", "functorch", "ghost")
    ).items():
        print(f"  {mode:9s} summed per-sample gradient vs autograd: relative error {err:.2e}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", help="local folder or hub id (default: the paper profile's)")
    ap.add_argument("--random-bert-base", action="store_true")
    ap.add_argument("--tokenizer", type=Path, help="bert-base-uncased tokenizer files")
    ap.add_argument("--train-examples", type=int, default=6000)
    ap.add_argument("--epsilon", type=float, default=1.0)
    ap.add_argument("--device", default="cuda")
    args = ap.parse_args()

    import warnings

    import torch

    warnings.filterwarnings("ignore", message="Full backward hook is firing")

    from privbias_lib.store import RunStore
    from privbias_lib.studies import dp_bias

    work = Path(tempfile.mkdtemp(prefix="privbias-paper-recipe-"))
    model = args.model
    if args.random_bert_base:
        if args.tokenizer is None:
            ap.error("--random-bert-base needs --tokenizer (bert-base-uncased's vocabulary)")
        model = str(random_bert_base(args.tokenizer, work / "bert-base-random"))
    profile = dp_bias.STUDY.resolve("paper")  # the notebook's defaults with the paper's changes
    paper_epochs = profile["EPOCHS"]
    profile.update(
        OUTPUT_DIR=str(work / "out"),
        DATASET="redditbias",
        DATA_SOURCE=None,
        MODEL=model or profile["MODEL"],
        MAX_TRAIN_EXAMPLES=args.train_examples,
        MAX_TEST_EXAMPLES=512,  # keeps validation a small share of the measured time
        EPOCHS=1,
        SEEDS=profile["SEEDS"][:1],
        EPSILONS=[args.epsilon],
        DIST_GROUP=None,
        BOOTSTRAP=0,
        DEVICE=args.device,
    )
    params = dp_bias.STUDY.validate(profile)
    data = dp_bias.load_data(params)
    dev = torch.device(args.device)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    print(f"device: {name}; torch {torch.__version__}; model {params.model}")

    sample = data[data.split == "train"].head(32)
    print("gradient check (sigma = 0, clipping norm 1e6, 32 comments, physical batch 8):")
    gradient_check(params.model, args.device, sample.text.tolist(), sample.label.tolist())

    records = dp_bias.STUDY.execute(params, data, RunStore(work / "runs"))
    results = dp_bias.results_table(params, records, data)
    overall = results.query("metric == 'overall_auc'").set_index("run")["value"]
    step_seconds = {}
    for r in records:
        h, p = r["history"], r["privacy"]
        steps = h["steps"]
        per_step = h["wall_time_s"] / steps  # validation passes included
        step_seconds[r["epsilon"]] = per_step
        eps = (
            f"eps {p['epsilon']:.3f} ({p['accountant']}), bound {p['epsilon_bound']:.3f} "
            f"({p['bound_accountant']}), sigma {p['sigma']:.3f}"
            if p
            else "non-private"
        )
        print(
            f"  {r['run']}: {r['train_size']} examples, {steps} steps ({h['grad_sample_mode']}),"
            f" {per_step * 1e3:.1f} ms/step,"
            f" peak {h['peak_memory_mb']:.0f} MB, test AUC {overall[r['run']]:.3f}; {eps}"
        )
    dp_run = next(r for r in records if r["epsilon"] is not None)
    spec = {k: dp_run[k] for k in ("experiment", "run", "epsilon", "seed", "share")}
    again = dp_bias.train_and_score(params, {**spec, "positive_rate": None}, data)
    same = again["scores"] == dp_run["scores"]
    print(f"  rerun of {dp_run['run']} gives identical test scores: {same}")
    steps_per_epoch = 0.7 * JIGSAW_TRAIN / params.batch_size
    hours = (
        3  # the paper profile's seeds
        * paper_epochs
        * steps_per_epoch
        * (step_seconds[None] + 5 * step_seconds[args.epsilon])
        / 3600
    )
    print(
        f"projection for the paper profile (Jigsaw, {steps_per_epoch:.0f} steps per epoch, "
        f"at most {paper_epochs} epochs, non-private + 5 epsilons, 3 seeds): "
        f"at most {hours:.1f} GPU hours on this device (early stopping shortens it)"
    )


if __name__ == "__main__":
    main()
