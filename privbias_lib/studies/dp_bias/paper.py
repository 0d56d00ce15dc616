"""The paper's numbers (Islam et al. 2024, bert-base-uncased, mean of 3 seeds), in the
layouts of our own tables."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd

from ...metrics import AUC_METRICS, power_mean
from .params import DPBiasParams
from .results import SUMMARY_METRICS, epsilon_order, epsilon_table
from .runs import SHARED, SWEEP

_PAPER_TABLES = {
    "jigsaw": (
        ["male", "female", "transgender", "white", "black", "asian"],
        """
none|.895 .898 .797 .798 .810 .887|.886 .901 .838 .780 .792 .922|.956 .948 .940 .963 .960 .924|.946
0.5|.799 .819 .789 .735 .729 .871|.777 .813 .810 .692 .758 .855|.892 .881 .858 .904 .862 .888|.872
1|.816 .830 .818 .739 .742 .881|.787 .821 .809 .674 .751 .854|.909 .897 .891 .924 .886 .912|.886
3|.845 .846 .828 .761 .770 .886|.818 .844 .800 .696 .755 .869|.935 .920 .929 .948 .927 .930|.913
6|.852 .851 .830 .765 .775 .885|.824 .848 .794 .704 .753 .873|.939 .925 .936 .951 .934 .931|.918
9|.855 .854 .834 .767 .776 .884|.828 .851 .792 .709 .754 .876|.940 .927 .939 .952 .937 .930|.920
""",
    ),
    "measuring-hate-speech": (
        ["men", "women", "transgender", "white", "black", "asian"],
        """
none|.824 .815 .880 .817 .883 .858|.841 .821 .910 .857 .811 .920|.845 .868 .807 .821 .918 .769|.855
0.5|.744 .748 .847 .761 .846 .789|.733 .721 .843 .802 .751 .875|.809 .831 .790 .751 .872 .683|.790
1|.759 .761 .849 .776 .858 .809|.750 .745 .859 .803 .763 .885|.819 .832 .785 .778 .883 .704|.802
3|.768 .772 .852 .781 .860 .793|.779 .769 .868 .812 .764 .883|.811 .834 .783 .788 .896 .707|.814
6|.777 .777 .857 .786 .866 .823|.781 .772 .875 .819 .775 .896|.822 .841 .789 .792 .898 .723|.819
9|.771 .768 .833 .769 .860 .799|.779 .767 .865 .811 .768 .892|.813 .832 .769 .778 .893 .694|.813
""",
    ),
}


def paper_results(dataset: str) -> pd.DataFrame:
    """The paper's per-epsilon means over 3 seeds (bert-base-uncased), tidy: epsilon,
    subgroup, metric, value."""
    if dataset not in _PAPER_TABLES:
        raise ValueError(f"the paper has no results for {dataset!r}; it has {list(_PAPER_TABLES)}")
    groups, text = _PAPER_TABLES[dataset]
    rows = []
    for line in io.StringIO(text.strip()):
        eps, *blocks = line.strip().split("|")
        for metric, block in zip(AUC_METRICS, blocks[:3], strict=True):
            for g, v in zip(groups, block.split(), strict=True):
                rows.append((eps, g, metric, float(v)))
        rows.append((eps, "overall", "overall_auc", float(blocks[3])))
    return pd.DataFrame(rows, columns=["epsilon", "subgroup", "metric", "value"])


def paper_epsilon_table(dataset: str) -> pd.DataFrame:
    """The paper's table in the same layout as :func:`epsilon_table`."""
    df = paper_results(dataset).assign(experiment=SWEEP, recipe=SHARED)
    groups = _PAPER_TABLES[dataset][0]
    return epsilon_table(df, groups)


def paper_summary_table(dataset: str) -> pd.DataFrame:
    """:func:`summary_table` computed from the paper's per-epsilon means (the paper
    reports the AUCs only; the power means here are of its seed-averaged values)."""
    paper = paper_results(dataset)
    out = {}
    for eps, part in paper.groupby("epsilon"):
        row = {}
        for m in AUC_METRICS:
            row[f"power_mean_{m}"] = power_mean(part[part.metric == m].value.to_numpy())
        row["overall_auc"] = float(part[part.metric == "overall_auc"].value.iloc[0])
        row["jigsaw_summary"] = 0.25 * row["overall_auc"] + 0.75 * float(
            np.mean([row[f"power_mean_{m}"] for m in AUC_METRICS])
        )
        out[eps] = row
    wide = pd.DataFrame.from_dict(out, orient="index")
    return wide.reindex(index=epsilon_order(wide.index), columns=list(SUMMARY_METRICS))


def paper_dataset(params: DPBiasParams) -> str:
    """The paper's dataset to compare with: the one we ran, or Jigsaw for the offline
    RedditBias run (which the paper did not use)."""
    return params.dataset if params.dataset != "redditbias" else "jigsaw"
