"""Paired significance tests and Holm correction."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from oucr.errors import DataError
from oucr.stats import holm, paired_comparison, significance_table


def test_holm_matches_definition():
    p = np.array([0.01, 0.04, 0.03, np.nan, 0.005])
    adj = holm(p)
    # sorted valid: 0.005 (x4), 0.01 (x3), 0.03 (x2), 0.04 (x1), cumulative max
    assert adj[4] == pytest.approx(0.02)
    assert adj[0] == pytest.approx(0.03)
    assert adj[2] == pytest.approx(0.06)
    assert adj[1] == pytest.approx(0.06)
    assert np.isnan(adj[3])


def test_paired_comparison_against_scipy():
    rng = np.random.default_rng(0)
    a = rng.normal(30, 1, 40)
    b = a - 0.5 + rng.normal(0, 0.3, 40)
    row = paired_comparison(a, b)
    d = a - b
    assert row["n"] == 40
    assert row["mean_diff"] == pytest.approx(d.mean())
    assert row["t_p"] == pytest.approx(sps.ttest_rel(a, b).pvalue)
    assert row["wilcoxon_p"] == pytest.approx(sps.wilcoxon(a, b).pvalue)
    half = sps.t.ppf(0.975, 39) * d.std(ddof=1) / np.sqrt(40)
    assert row["ci_low"] == pytest.approx(d.mean() - half)
    assert row["ci_high"] == pytest.approx(d.mean() + half)
    assert row["cohen_dz"] == pytest.approx(d.mean() / d.std(ddof=1))


def _metrics(method, offset, n_vol=4, n_slice=3, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for v in range(n_vol):
        for s in range(n_slice):
            rows.append({"method": method, "dataset": "d", "acceleration": 4, "volume": f"v{v}", "slice": s,
                         "psnr": 30 + offset + rng.normal(0, 0.1), "ssim": 0.9 + offset / 100,
                         "nmse": 0.01 - offset / 1000})
    return pd.DataFrame(rows)


def test_significance_table_pairs_and_corrects():
    per_slice = pd.concat([_metrics("OUCR", 1.0), _metrics("UNet", 0.0, seed=1), _metrics("CS", -1, seed=2)])
    per_volume = per_slice.groupby(["method", "dataset", "acceleration", "volume"], as_index=False)[["psnr", "ssim", "nmse"]].mean()
    table = significance_table(per_slice, per_volume)
    assert set(table["method"]) == {"UNet", "CS"}
    assert set(table["level"]) == {"slice", "volume"}
    row = table[(table["method"] == "UNet") & (table["metric"] == "psnr") & (table["level"] == "slice")].iloc[0]
    assert row["n"] == 12
    assert row["mean_diff"] > 0.8
    assert row["t_p_holm"] >= row["t_p"]


def test_significance_table_rejects_unpaired_data():
    per_slice = pd.concat([_metrics("OUCR", 1.0), _metrics("UNet", 0.0, n_vol=3)])
    per_volume = per_slice.groupby(["method", "dataset", "acceleration", "volume"], as_index=False)[["psnr", "ssim", "nmse"]].mean()
    with pytest.raises(DataError, match="different"):
        significance_table(per_slice, per_volume)


def test_metric_files_named_twice_count_once_and_duplicate_rows_are_refused(tmp_path):
    from oucr.stats import read_metric_files

    a = _metrics("OUCR", 1.0)
    a.to_csv(tmp_path / "a.csv", index=False)
    assert len(read_metric_files([tmp_path / "a.csv", tmp_path / "a.csv"])) == len(a)
    a.to_csv(tmp_path / "b.csv", index=False)
    with pytest.raises(DataError, match="duplicated metric rows"):
        read_metric_files([tmp_path / "a.csv", tmp_path / "b.csv"])
