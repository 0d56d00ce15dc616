"""A reference any DP recipe should reach: logistic regression on frozen features — the
mean-pooled hidden states entering the encoder's trainable top, which no recipe changes —
fitted non-privately, its regularisation chosen on the validation split."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ...metrics import auc
from .params import DPBiasParams

STRENGTHS = (0.01, 0.1, 1.0, 10.0)  # inverse L2 strengths C tried on validation


def frozen_feature_baseline(params: DPBiasParams, data: pd.DataFrame) -> dict:
    """Overall test AUC of the logistic regression (and its validation AUC and C)."""
    from sklearn.linear_model import LogisticRegression

    from ...models import load_model, quiet_transformers
    from ...training.batches import encode_classification
    from ...training.frozen import bottom_states

    with quiet_transformers():
        model, tok = load_model(params.model, "classification", num_labels=2, device="cpu")
    features = {}
    for split in ("train", "validation", "test"):
        part = data[data.split == split]
        enc = encode_classification(tok, part.text, part.label, params.max_length)
        states = bottom_states(model, params.top_layers, enc)  # the training runs' cache
        features[split] = (np.stack([s.mean(0).numpy() for s in states]), part.label.to_numpy())
    (x, y), (xv, yv), (xt, yt) = features["train"], features["validation"], features["test"]
    mean, sd = x.mean(0), x.std(0) + 1e-8
    fits = {c: LogisticRegression(C=c, max_iter=2000).fit((x - mean) / sd, y) for c in STRENGTHS}
    val = {c: auc(yv, f.predict_proba((xv - mean) / sd)[:, 1]) for c, f in fits.items()}
    best = max(STRENGTHS, key=lambda c: val[c])
    test = auc(yt, fits[best].predict_proba((xt - mean) / sd)[:, 1])
    return {"C": best, "val_auc": val[best], "test_auc": test}
