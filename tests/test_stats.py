"""Paired comparisons of ``oucr stats``: pairing, tests, floors, Holm families, bootstrap, replicates, input."""

import argparse
import itertools

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from oucr import names
from oucr.errors import DataError
from oucr import paired_tests, stats_markdown
from oucr.metric_files import read_metric_files
from oucr.paired_tests import holm, paired_t, signflip_p, signflip_patterns, wilcoxon_floor
from oucr.stats import COLUMNS, add_arguments, run, significance_table
from oucr.stats_markdown import significance_markdown


def volumes_frame(values, method, dataset="d", acc=4, replicate=None, volumes=None, metric="psnr"):
    """Per-volume rows of one method: ``values[v]`` for volume ``v{v}``."""
    volumes = volumes or [f"v{v}" for v in range(len(values))]
    frame = pd.DataFrame({"method": method, "dataset": dataset, "acceleration": acc, "volume": volumes,
                          metric: np.asarray(values, dtype=float)})
    if replicate is not None:
        frame["replicate"] = replicate
    return frame


def slices_from(per_volume, n_slices=3, spread=None, metric="psnr"):
    """Per-slice rows: every slice of a volume at the volume's value (+ ``spread[s]``)."""
    spread = np.zeros(n_slices) if spread is None else np.asarray(spread, dtype=float)
    rows = [{**r, "slice": s, metric: r[metric] + spread[s]} for r in per_volume.to_dict("records")
            for s in range(n_slices)]
    return pd.DataFrame(rows)


def row_of(table, method, metric="psnr", level="volume", dataset=None, acc=None):
    sel = (table["method"] == method) & (table["metric"] == metric) & (table["level"] == level)
    if dataset is not None:
        sel &= table["dataset"] == dataset
    if acc is not None:
        sel &= table["acceleration"] == acc
    hit = table[sel]
    assert len(hit) == 1, hit
    return hit.iloc[0]


def compare(per_volume, per_slice=None, **kwargs):
    if per_slice is None:
        per_slice = slices_from(per_volume)
    kwargs.setdefault("n_bootstrap", 300)
    return significance_table(per_slice, per_volume, **kwargs)


# ----------------------------------------------------------------------------- Holm

def test_holm_matches_hand_computation_and_counts_undefined_tests_in_the_family():
    adj = holm([0.01, 0.04, 0.03, np.nan, 0.005])
    # m = 5 (the NaN counts): 0.005*5 = 0.025, 0.01*4 = 0.04, 0.03*3 = 0.09, 0.04*2 = 0.08 -> running max 0.09
    np.testing.assert_allclose(adj[[4, 0, 2, 1]], [0.025, 0.04, 0.09, 0.09])
    assert np.isnan(adj[3])
    np.testing.assert_allclose(holm([0.5, 0.6]), [1.0, 1.0])


def _hand_holm(p):
    """Holm step-down written out, as the test's own oracle."""
    order = sorted(range(len(p)), key=lambda i: p[i])
    out, running = [0.0] * len(p), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p) - rank) * p[i]))
        out[i] = running
    return out


def test_holm_families_span_every_dataset_acceleration_and_method_of_a_table():
    rng = np.random.default_rng(3)
    n = 8
    frames = []
    for dataset in ("a", "b"):
        for acc in (4, 8):
            base = rng.normal(30, 1, n)
            frames.append(volumes_frame(base, "OUCR", dataset, acc))
            for k, method in enumerate(["UNet", "D5C5", "OC-CRNN"]):
                frames.append(volumes_frame(base - 0.3 * (k + 1) + rng.normal(0, 0.4, n), method, dataset, acc))
    per_volume = pd.concat(frames, ignore_index=True)
    per_volume["ssim"] = 0.9 + per_volume["psnr"] / 1000 + rng.normal(0, 1e-4, len(per_volume))
    table = compare(per_volume)
    volume = table[table["level"] == "volume"]
    assert set(volume.loc[volume["method"] == "OC-CRNN", "table"]) == {"table2"}
    assert set(volume.loc[volume["method"] != "OC-CRNN", "table"]) == {"table1"}
    for (tab, metric), family in volume.groupby(["table", "metric"]):
        assert len(family) == (8 if tab == "table1" else 4)
        assert (family["family_size"] == len(family)).all()
        for test in ("t", "wilcoxon"):
            np.testing.assert_allclose(family[f"{test}_p_holm"], _hand_holm(list(family[f"{test}_p"])), rtol=1e-12)
    # the correction is not the identity here, so dropping it cannot pass
    assert (volume["t_p_holm"] > volume["t_p"] * 1.5).any()


# ----------------------------------------------------------------------------- pairing

def test_pairing_is_by_volume_not_by_row_position():
    ref = np.array([10.0, 20.0, 30.0, 40.0, 50.0])
    other = ref - np.array([0.1, 0.3, 0.2, 0.5, 0.4])
    per_volume = pd.concat([volumes_frame(ref, "OUCR"), volumes_frame(other, "UNet").iloc[::-1]], ignore_index=True)
    row = row_of(compare(per_volume), "UNet")
    d = ref - other
    assert row["n"] == 5
    assert row["mean_diff"] == pytest.approx(d.mean())
    assert row["t_p"] == pytest.approx(sps.ttest_rel(ref, other).pvalue, rel=1e-10)
    assert row["cohen_dz"] == pytest.approx(d.mean() / d.std(ddof=1), rel=1e-10)
    assert row["wilcoxon_p"] == pytest.approx(sps.wilcoxon(ref, other).pvalue)
    assert row["wilcoxon_method"] == "exact"


@pytest.mark.parametrize("fault, message", [
    ("missing", "lacks 1 of the reference's 4"),
    ("extra", "has 1 the reference lacks"),
    ("duplicate", "duplicated rows"),
    ("partial_replicate", "replicate 1 of UNet covers 3 of the 4"),
])
def test_unpaired_data_is_a_data_error_naming_the_group(fault, message):
    ref = volumes_frame([30, 31, 32, 33], "OUCR", dataset="knee", acc=8)
    other = volumes_frame([29, 30, 31, 32], "UNet", dataset="knee", acc=8)
    if fault == "missing":
        other = other.iloc[:3]
    elif fault == "extra":
        other = pd.concat([other, volumes_frame([1.0], "UNet", "knee", 8, volumes=["v9"])])
    elif fault == "duplicate":
        other = pd.concat([other, other.iloc[:1]])
    else:
        other = pd.concat([other.assign(replicate=0), other.iloc[:3].assign(replicate=1)])
    with pytest.raises(DataError, match=message) as err:
        compare(pd.concat([ref, other], ignore_index=True))
    assert "knee x8" in str(err.value)


def test_mixed_evaluation_conditions_are_refused():
    per_volume = pd.concat([volumes_frame([30, 31, 32], "OUCR"), volumes_frame([29, 30, 31], "UNet")],
                           ignore_index=True)
    per_volume["condition"] = ["nominal"] * 5 + ["noise"]
    with pytest.raises(DataError, match="several evaluation conditions"):
        compare(per_volume)


# ----------------------------------------------------------------------------- zero variance and floors

def test_constant_nonzero_difference_gives_t_p_zero_and_infinite_dz():
    other = np.array([30.0, 31.5, 29.25, 30.75])  # exact binary fractions: the difference is exactly 0.5
    per_volume = pd.concat([volumes_frame(other + 0.5, "OUCR"), volumes_frame(other, "UNet"),
                            volumes_frame(other, "CS")], ignore_index=True)
    table = compare(per_volume)
    constant = row_of(table, "UNet")
    assert constant["t_p"] == 0.0 and constant["t_stat"] == np.inf
    assert constant["cohen_dz"] == np.inf
    assert constant["wilcoxon_p"] == pytest.approx(0.125)  # ties, but never p = 1
    assert constant["mean_diff"] == 0.5 and constant["ci_low"] == 0.5 and constant["ci_high"] == 0.5
    # rounding noise around a constant difference is still a constant difference
    assert paired_t(np.array([0.5, 0.5 + 4e-15, 0.5 - 4e-15, 0.5]), tol=1e-13) == (np.inf, 0.0)
    per_volume_zero = pd.concat([volumes_frame(other, "OUCR"), volumes_frame(other, "UNet")], ignore_index=True)
    zero = row_of(compare(per_volume_zero), "UNet")
    assert np.isnan(zero["t_p"]) and np.isnan(zero["wilcoxon_p"]) and np.isnan(zero["cohen_dz"])


def test_paired_t_equals_scipy_when_differences_vary():
    rng = np.random.default_rng(0)
    a = rng.normal(30, 1, 40)
    b = a - 0.5 + rng.normal(0, 0.3, 40)
    t, p = paired_t(a - b)
    ref = sps.ttest_rel(a, b)
    assert t == pytest.approx(ref.statistic, rel=1e-12) and p == pytest.approx(ref.pvalue, rel=1e-10)


def test_wilcoxon_floor_at_four_volumes_is_0125_and_0875_after_holm_over_seven():
    # scipy's exact distribution: the smallest two-sided p over all 16 sign patterns of 4 ranks
    exact = [sps.wilcoxon(np.array(signs) * np.arange(1.0, 5.0), method="exact").pvalue
             for signs in itertools.product([-1, 1], repeat=4)]
    assert min(exact) == pytest.approx(2 / 2 ** 4) == pytest.approx(wilcoxon_floor(4))
    base = np.array([30.0, 32.0, 31.0, 33.0])
    others = ["Zero-filled", "CS", "UNet", "KIKI-Net", "Kiu-net", "D5C5", "PC-RNN"]
    frames = [volumes_frame(base, "OUCR")] + [
        volumes_frame(base - np.array([0.1, 0.2, 0.3, 0.4]) * (k + 1), m) for k, m in enumerate(others)]
    table = compare(pd.concat(frames, ignore_index=True))
    volume = table[table["level"] == "volume"]
    assert len(volume) == 7 and (volume["family_size"] == 7).all()
    assert np.allclose(volume["wilcoxon_min_p"], 0.125) and np.allclose(volume["wilcoxon_min_p_holm"], 0.875)
    assert np.allclose(volume["wilcoxon_p"], 0.125) and np.allclose(volume["wilcoxon_p_holm"], 0.875)
    slices = table[table["level"] == "slice"]  # the clustered slice test has the same floor
    assert np.allclose(slices["signflip_min_p"], 0.125) and np.allclose(slices["signflip_p_holm"], 0.875)


def test_signflip_p_matches_enumeration_with_unequal_volumes():
    sums = np.array([2.0, -0.5, 1.5, 0.75, 3.0])
    patterns, exact = signflip_patterns(5, 100, np.random.default_rng(0))
    assert exact and len(patterns) == 32
    observed = abs(sums.sum())
    hits = sum(abs(np.dot(s, sums)) >= observed - 1e-12 for s in itertools.product([-1, 1], repeat=5))
    assert signflip_p(sums[:, None], patterns, exact)[0] == pytest.approx(hits / 32)
    assert hits / 32 > 2 / 32  # one volume against the others: not the floor


# ----------------------------------------------------------------------------- bootstrap

def test_bootstrap_interval_agrees_with_the_t_interval_for_normal_differences():
    rng = np.random.default_rng(1)
    ref = rng.normal(30, 1, 60)
    d = rng.normal(0.4, 0.5, 60)
    per_volume = pd.concat([volumes_frame(ref, "OUCR"), volumes_frame(ref - d, "UNet")], ignore_index=True)
    row = row_of(compare(per_volume, n_bootstrap=2000), "UNet")
    half = sps.t.ppf(0.975, 59) * d.std(ddof=1) / np.sqrt(60)
    assert row["ci_low"] < d.mean() < row["ci_high"]
    assert (row["ci_high"] - row["ci_low"]) / (2 * half) == pytest.approx(1.0, abs=0.12)
    assert row["ci_low"] == pytest.approx(d.mean() - half, abs=0.05)
    assert row["dz_ci_low"] < row["cohen_dz"] < row["dz_ci_high"]


def test_hierarchical_bootstrap_resamples_volumes_not_slices():
    rng = np.random.default_rng(2)
    n_vol, n_slices = 20, 35
    ref = rng.normal(30, 1, n_vol)
    d = rng.normal(0.5, 1.0, n_vol)
    per_volume = pd.concat([volumes_frame(ref, "OUCR"), volumes_frame(ref - d, "UNet")], ignore_index=True)
    per_slice = slices_from(per_volume, n_slices)  # slices perfectly correlated within a volume
    table = compare(per_volume, per_slice, n_bootstrap=2000)
    vol, sl = row_of(table, "UNet"), row_of(table, "UNet", level="slice")
    assert sl["n"] == n_vol and sl["n_slices"] == n_vol * n_slices
    assert sl["mean_diff"] == pytest.approx(vol["mean_diff"])
    width_ratio = (sl["ci_high"] - sl["ci_low"]) / (vol["ci_high"] - vol["ci_low"])
    assert width_ratio == pytest.approx(1.0, abs=0.15)  # slices as independent units would give about 0.17
    # the sign-flip test flips volumes: with 20 volumes it is the exact test on the 20 volume sums
    assert sl["signflip_method"] == "monte-carlo" and sl["signflip_p"] > 1e-3


def test_nonfinite_slices_are_left_out_and_counted_but_nonfinite_volumes_are_an_error():
    per_volume = pd.concat([volumes_frame([30, 31, 32, 33], "OUCR"), volumes_frame([29, 30, 31, 31.5], "UNet")],
                           ignore_index=True)
    per_slice = slices_from(per_volume, 3, spread=[0.0, 0.1, -0.1])
    per_slice.loc[(per_slice["method"] == "UNet") & (per_slice["slice"] == 1) & (per_slice["volume"] == "v2"),
                  "psnr"] = np.inf
    row = row_of(compare(per_volume, per_slice), "UNet", level="slice")
    assert row["n_slices"] == 11 and row["n_excluded"] == 1 and row["n"] == 4
    per_volume.loc[0, "psnr"] = np.nan
    with pytest.raises(DataError, match="not finite"):
        compare(per_volume, per_slice)


# ----------------------------------------------------------------------------- replicates

def test_replicates_are_averaged_per_volume_before_pairing_and_sign_agreement_is_counted():
    base = np.array([30.0, 31.0, 29.0, 32.0])
    wiggle = np.array([0.01, -0.02, 0.03, -0.02])  # mean zero: pair means are the offsets below
    ref_offsets, method_offsets = [1.0, 0.25], [0.5, 0.125, 0.0]
    frames = [volumes_frame(base + o + wiggle, "OUCR", replicate=i) for i, o in enumerate(ref_offsets)]
    frames += [volumes_frame(base + o, "UNet", replicate=j) for j, o in enumerate(method_offsets)]
    frames += [volumes_frame(base + o, "D5C5", replicate=j) for j, o in enumerate([1.2, 0.9, 0.3])]
    frames.append(volumes_frame(base - 1, "CS"))  # untrained: replicate 0 only, no replicate value
    per_volume = pd.concat(frames, ignore_index=True)  # CS's replicate is NaN: replicate 0
    table = compare(per_volume)
    row = row_of(table, "UNet")
    ref_avg = base + np.mean(ref_offsets) + wiggle
    method_avg = base + np.mean(method_offsets)
    assert row["n"] == 4 and row["n_replicates_reference"] == 2 and row["n_replicates_method"] == 3
    assert row["mean_diff"] == pytest.approx(np.mean(ref_offsets) - np.mean(method_offsets))
    assert row["mean_method"] == pytest.approx(method_avg.mean())
    assert row["t_p"] == pytest.approx(sps.ttest_rel(ref_avg, method_avg).pvalue, rel=1e-9)
    # pairs (1-0.5, 1-0.125, 1-0, 0.25-0.5, 0.25-0.125, 0.25-0): five of six share the averaged sign
    assert (row["sign_agree"], row["sign_pairs"]) == (5, 6)
    # averaged difference 0.625 - 0.8 < 0; pairs -0.2, 0.1, 0.7, -0.95, -0.65, -0.05: four of six negative
    worse = row_of(table, "D5C5")
    assert worse["mean_diff"] == pytest.approx(-0.175) and (worse["sign_agree"], worse["sign_pairs"]) == (4, 6)
    cs = row_of(table, "CS")
    assert (cs["n_replicates_method"], cs["sign_agree"], cs["sign_pairs"]) == (1, 2, 2)
    sl = row_of(table, "UNet", level="slice")
    assert (sl["sign_agree"], sl["sign_pairs"]) == (5, 6)


# ----------------------------------------------------------------------------- determinism and output

def _write_inputs(tmp_path, shuffle_seed=None):
    rng = np.random.default_rng(5)
    base = rng.normal(30, 1, 6)
    frames = [volumes_frame(base, "OUCR", replicate=0), volumes_frame(base + 0.1, "OUCR", replicate=1),
              volumes_frame(base - rng.normal(0.3, 0.2, 6), "UNet"), volumes_frame(base - 1, "CS"),
              volumes_frame(base - rng.normal(0.1, 0.2, 6), "OC-CRNN")]
    per_volume = pd.concat(frames, ignore_index=True)
    per_volume["replicate"] = per_volume["replicate"].fillna(0).astype(int)
    per_volume["nmse"] = 0.05 - per_volume["psnr"] / 1000
    per_slice = slices_from(per_volume, 4, spread=[0.0, 0.2, -0.1, 0.05])
    per_slice["nmse"] = 0.05 - per_slice["psnr"] / 1000
    if shuffle_seed is not None:
        per_volume = per_volume.sample(frac=1, random_state=shuffle_seed)
        per_slice = per_slice.sample(frac=1, random_state=shuffle_seed)
    tag = "" if shuffle_seed is None else f"_{shuffle_seed}"
    per_volume.to_csv(tmp_path / f"volumes{tag}.csv", index=False)
    per_slice.to_csv(tmp_path / f"slices{tag}.csv", index=False)
    return tmp_path / f"volumes{tag}.csv", tmp_path / f"slices{tag}.csv"


def _run(volumes, slices, out, seed=2021):
    args = argparse.Namespace(slices=[slices], volumes=[volumes], reference="OUCR", out=out, bootstrap=500,
                              seed=seed)
    assert run(args) == 0
    return out.read_bytes()


def test_same_inputs_give_a_byte_identical_csv_whatever_the_row_order(tmp_path):
    volumes, slices = _write_inputs(tmp_path)
    first = _run(volumes, slices, tmp_path / "a.csv")
    assert first == _run(volumes, slices, tmp_path / "b.csv")
    shuffled = _write_inputs(tmp_path, shuffle_seed=7)
    assert first == _run(*shuffled, tmp_path / "c.csv")
    assert first != _run(volumes, slices, tmp_path / "d.csv", seed=1)
    table = pd.read_csv(tmp_path / "a.csv")
    assert list(table.columns) == COLUMNS
    nmse = row_of(table, "CS", metric="nmse")
    assert not nmse["higher_is_better"] and nmse["mean_diff"] < 0  # reference lower NMSE: negative difference


def test_every_option_has_help_text():
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    options = {a.dest: a for a in parser._actions if a.dest != "help"}
    assert {"slices", "volumes", "reference", "out", "bootstrap", "seed"} <= set(options)
    assert all(a.help for a in options.values())


# ----------------------------------------------------------------------------- Markdown

def test_markdown_states_what_n_supports_and_labels_slice_rows(tmp_path):
    base = np.array([30.0, 32.0, 31.0, 33.0])
    frames = [volumes_frame(base, "OUCR", replicate=0), volumes_frame(base + 0.1, "OUCR", replicate=1)]
    frames += [volumes_frame(base - 0.2 * (k + 1) - np.array([0.0, 0.1, 0.05, 0.02]), m, replicate=0)
               for k, m in enumerate(names.TABLE1_METHODS[:-1] + ["UC-CRNN"])]
    table = compare(pd.concat(frames, ignore_index=True))
    md = significance_markdown(table, True, "DEMO numbers, not the paper's.")
    assert md.splitlines()[2] == "> DEMO numbers, not the paper's."
    assert ("With n = 4 test volumes per comparison the smallest two-sided Wilcoxon p-value is 0.125, 0.75 after "
            "Holm over the 6 comparisons per metric of Table 1: no comparison can reach p < 0.05") in md
    assert "At least 8 volumes per comparison would be needed" in md  # 6 * 2 / 2**8 < 0.05 <= 6 * 2 / 2**7
    assert "0.125 after Holm over the 1 comparison per metric of Table 2 (ablation)" in md and "## Table 2" in md
    assert "### Slice level (descriptive)" in md and "replicate sign agreement" in md
    assert "t-test has no floor" in md
    rng = np.random.default_rng(0)
    big = rng.normal(30, 1, 20)
    large = pd.concat([volumes_frame(big, "OUCR"), volumes_frame(big - rng.normal(1, 0.1, 20), "UNet")],
                      ignore_index=True)
    md_large = significance_markdown(compare(large), False, None)
    assert "> " not in md_large and "replicate sign agreement" not in md_large
    assert "With n = 20 test volumes" in md_large and "p < 0.05 is reachable" in md_large


# ----------------------------------------------------------------------------- reading metric files

@pytest.mark.parametrize("content, message", [
    (b"", "empty"),
    (b"\xff\xfe\x00garbage\x00\x81", "not a readable metrics file"),
    (b"method,dataset,acceleration,volume,psnr\nOUCR,d,4,v0,30\nOUCR,d,4,v1,30,1,2\n", "not a readable metrics file"),
    (b"method,dataset,volume,psnr\nOUCR,d,v0,30\n", "lacks the column"),
    (b"method,dataset,acceleration,volume,psnr\n", "no rows"),
    (b"method,dataset,acceleration,volume,psnr\nOUCR,d,4,v0,30\nOUCR,d,4,v1,abc\n", "non-numeric psnr"),
    (b"method,dataset,acceleration,volume,notes\nOUCR,d,4,v0,x\n", "none of the metric columns"),
])
def test_damaged_metric_file_is_a_data_error_naming_the_file(tmp_path, content, message):
    good = tmp_path / "good.csv"
    volumes_frame([30.0], "UNet").to_csv(good, index=False)
    bad = tmp_path / "damaged_metrics.csv"
    bad.write_bytes(content)
    with pytest.raises(DataError, match=message) as err:
        read_metric_files([good, bad])
    assert err.value.path.endswith("damaged_metrics.csv")


def test_metric_files_named_twice_count_once_and_duplicate_rows_are_refused(tmp_path, monkeypatch):
    a = slices_from(volumes_frame([30.0, 31.0], "OUCR"))
    a.to_csv(tmp_path / "a.csv", index=False)
    monkeypatch.chdir(tmp_path)
    assert len(read_metric_files([tmp_path / "a.csv", "a.csv", "./a.csv"], required=("slice",))) == len(a)
    a.to_csv(tmp_path / "b.csv", index=False)
    with pytest.raises(DataError, match="duplicated metric rows") as err:
        read_metric_files([tmp_path / "a.csv", tmp_path / "b.csv"])
    assert "a.csv" in str(err.value) and "b.csv" in str(err.value)
    # replicates are distinct rows; a file without the column is replicate 0
    volumes_frame([30.0, 31.0], "OUCR", replicate=1).to_csv(tmp_path / "r1.csv", index=False)
    volumes_frame([30.0, 31.0], "OUCR").to_csv(tmp_path / "r0.csv", index=False)
    both = read_metric_files([tmp_path / "r0.csv", tmp_path / "r1.csv"])
    assert sorted(both["replicate"]) == [0, 0, 1, 1]


# ----------------------------------------------------------------------------- every column, from the documented procedure

def _documented_rng(seed, level, dataset, acc):
    """The generator the module docstring describes: ``--seed`` and SHA-256 of ``level|dataset|acceleration``."""
    import hashlib

    digest = hashlib.sha256(f"{level}|{dataset}|{acc}".encode()).digest()
    return np.random.SeedSequence([seed, *np.frombuffer(digest[:16], dtype="<u4").tolist()])


def _percentile_interval(values):
    values = np.asarray(values, float)
    values = values[~np.isnan(values)]
    return tuple(np.quantile(values, [0.025, 0.975], method="inverted_cdf"))


def _volume_bootstrap(d, n_boot, seed, dataset, acc):
    """Volumes resampled with replacement in blocks of 250 draws: mean and d_z of each resample."""
    rng = np.random.default_rng(_documented_rng(seed, "volume", dataset, acc))
    means, dzs = [], []
    for start in range(0, n_boot, 250):
        picks = rng.integers(0, d.size, size=(min(250, n_boot - start), d.size))
        for row in d[picks]:
            means.append(row.mean())
            sd = row.std(ddof=1)
            dzs.append(row.mean() / sd if sd > 0 else (np.copysign(np.inf, row.mean()) if row.mean() else np.nan))
    return _percentile_interval(means), _percentile_interval(dzs)


def _hierarchical_bootstrap(diffs_by_volume, n_boot, seed, dataset, acc):
    """Volumes with replacement, then slices within each drawn volume, in the documented draw order."""
    rng = np.random.default_rng(_documented_rng(seed, "slice", dataset, acc).spawn(2)[0])
    sizes = np.array([len(v) for v in diffs_by_volume])
    means = []
    for start in range(0, n_boot, 250):
        block = min(250, n_boot - start)
        picks = rng.integers(0, len(sizes), size=(block, len(sizes)))
        u = iter(rng.random(int(sizes[picks].sum())))
        for draw in picks:
            drawn = [diffs_by_volume[v][min(int(next(u) * sizes[v]), sizes[v] - 1)] for v in draw for _ in range(sizes[v])]
            means.append(np.mean(drawn))
    return _percentile_interval(means)


def test_every_column_of_a_comparison_follows_the_documented_procedure():
    rng = np.random.default_rng(11)
    n, n_slices, n_boot, seed = 12, 3, 610, 7  # 610 * 0.025 is no integer: no tie in the percentile rank
    ref_slices = 30 + rng.normal(0, 1, (2, n, n_slices))  # two reference replicates
    unet_slices = 29.5 + rng.normal(0, 1, (1, n, n_slices))
    rows = []
    for method, values in (("OUCR", ref_slices), ("UNet", unet_slices)):
        for r, rep in enumerate(values):
            for v in range(n):
                for s in range(n_slices):
                    rows.append({"method": method, "dataset": "knee", "acceleration": 8, "volume": f"v{v:02d}",
                                 "slice": s, "replicate": r, "psnr": rep[v, s]})
    per_slice = pd.DataFrame(rows)
    per_volume = per_slice.groupby(["method", "dataset", "acceleration", "volume", "replicate"],
                                   as_index=False)["psnr"].mean()
    table = significance_table(per_slice, per_volume, n_bootstrap=n_boot, seed=seed)
    assert list(table.columns) == COLUMNS and len(table) == 2

    ref_avg = ref_slices.mean(axis=0).mean(axis=1)
    unet_avg = unet_slices.mean(axis=0).mean(axis=1)
    d = ref_avg - unet_avg
    vol = row_of(table, "UNet")
    (ci_low, ci_high), (dz_low, dz_high) = _volume_bootstrap(d, n_boot, seed, "knee", 8)
    t = sps.ttest_rel(ref_avg, unet_avg)
    w = sps.wilcoxon(d)
    rep_means = ref_slices.mean(axis=(1, 2))
    expected = {
        "level": "volume", "table": "table1", "dataset": "knee", "acceleration": 8, "metric": "psnr",
        "higher_is_better": True, "method": "UNet", "reference": "OUCR", "n": n,
        "n_replicates_reference": 2, "n_replicates_method": 1,
        "mean_reference": ref_avg.mean(), "mean_method": unet_avg.mean(), "mean_diff": d.mean(),
        "ci_low": ci_low, "ci_high": ci_high, "cohen_dz": d.mean() / d.std(ddof=1),
        "dz_ci_low": dz_low, "dz_ci_high": dz_high, "t_stat": t.statistic, "t_p": t.pvalue, "t_p_holm": t.pvalue,
        "wilcoxon_stat": w.statistic, "wilcoxon_method": "exact", "wilcoxon_p": w.pvalue,
        "wilcoxon_p_holm": w.pvalue, "wilcoxon_min_p": 2 / 2 ** n, "wilcoxon_min_p_holm": 2 / 2 ** n,
        "family_size": 1, "sign_agree": int(np.sum(np.sign(rep_means - unet_avg.mean()) == np.sign(d.mean()))),
        "sign_pairs": 2, "n_bootstrap": n_boot, "seed": seed, "confidence": 0.95,
    }
    for column, value in expected.items():
        assert vol[column] == (pytest.approx(value, rel=1e-9) if isinstance(value, float) else value), column
    for column in ("n_slices", "n_excluded", "signflip_method", "signflip_p", "signflip_p_holm", "signflip_min_p",
                   "signflip_min_p_holm"):
        assert pd.isna(vol[column]), column

    sl = row_of(table, "UNet", level="slice")
    slice_d = ref_slices.mean(axis=0) - unet_slices.mean(axis=0)  # (volumes, slices)
    low, high = _hierarchical_bootstrap(list(slice_d), n_boot, seed, "knee", 8)
    sums = slice_d.sum(axis=1)
    flips = [abs(np.dot(signs, sums)) >= abs(sums.sum()) - 1e-9 * np.abs(sums).sum()
             for signs in itertools.product([-1, 1], repeat=n)]
    expected_slice = {
        "level": "slice", "n": n, "n_slices": n * n_slices, "n_excluded": 0, "n_replicates_reference": 2,
        "n_replicates_method": 1, "mean_reference": ref_slices.mean(), "mean_method": unet_slices.mean(),
        "mean_diff": slice_d.mean(), "ci_low": low, "ci_high": high, "signflip_method": "exact",
        "signflip_p": np.mean(flips), "signflip_p_holm": np.mean(flips), "signflip_min_p": 2 / 2 ** n,
        "signflip_min_p_holm": 2 / 2 ** n, "family_size": 1, "sign_pairs": 2, "n_bootstrap": n_boot, "seed": seed,
        "reference": "OUCR", "dataset": "knee", "acceleration": 8, "confidence": 0.95,
    }
    for column, value in expected_slice.items():
        assert sl[column] == (pytest.approx(value, rel=1e-9) if isinstance(value, float) else value), column
    for column in ("cohen_dz", "dz_ci_low", "t_stat", "t_p", "wilcoxon_stat", "wilcoxon_p", "wilcoxon_min_p"):
        assert pd.isna(sl[column]), column


def test_monte_carlo_sign_flips_above_sixteen_volumes_follow_the_documented_draw():
    rng = np.random.default_rng(4)
    n, n_boot, seed = 17, 300, 3
    ref = rng.normal(30, 1, n)
    other = ref - rng.normal(0.2, 0.5, n)
    per_volume = pd.concat([volumes_frame(ref, "OUCR"), volumes_frame(other, "UNet")], ignore_index=True)
    per_slice = per_volume.assign(slice=0)
    row = row_of(significance_table(per_slice, per_volume, n_bootstrap=n_boot, seed=seed), "UNet", level="slice")
    flip_rng = np.random.default_rng(_documented_rng(seed, "slice", "d", 4).spawn(2)[1])
    signs = flip_rng.choice(np.array([-1.0, 1.0]), size=(n_boot, n))
    order = np.argsort([f"v{v}" for v in range(n)])  # volumes in sorted order: v0, v1, v10, ...
    d = (ref - other)[order]
    hits = np.sum(np.abs(signs @ d) >= abs(d.sum()) - 1e-9 * np.abs(d).sum())
    floor_hits = np.sum(np.abs(signs @ np.abs(d)) >= np.abs(d).sum() * (1 - 1e-9))
    assert row["signflip_method"] == "monte-carlo"
    assert row["signflip_p"] == pytest.approx((1 + hits) / (1 + n_boot), rel=1e-12)
    assert row["signflip_min_p"] == pytest.approx((1 + floor_hits) / (1 + n_boot), rel=1e-12)


@pytest.mark.filterwarnings("error")  # degenerate data must not make the command warn
@pytest.mark.parametrize("n", [1, 2])
def test_one_or_two_volumes_give_defined_rows_without_warnings(n):
    ref = np.array([30.0, 32.5])[:n]
    per_volume = pd.concat([volumes_frame(ref, "OUCR"), volumes_frame(ref - [0.5, 0.25][:n], "UNet")],
                           ignore_index=True)
    table = compare(per_volume, n_bootstrap=50)
    row = row_of(table, "UNet")
    assert row["n"] == n and row["mean_diff"] == pytest.approx(np.mean([0.5, 0.25][:n]))
    if n == 1:  # no spread: no t-test, no d_z and no interval of d_z
        assert np.isnan(row["t_p"]) and np.isnan(row["cohen_dz"])
        assert np.isnan(row["dz_ci_low"]) and np.isnan(row["dz_ci_high"])
        assert isinstance(row["dz_ci_low"], float)
        assert row["wilcoxon_p"] == 1.0 and row["wilcoxon_method"] == "exact"
    else:
        d = np.array([0.5, 0.25])
        assert row["cohen_dz"] == pytest.approx(d.mean() / d.std(ddof=1))
        assert row["dz_ci_low"] <= row["cohen_dz"] <= row["dz_ci_high"] and np.isfinite(row["dz_ci_low"])
    assert row["ci_low"] <= row["mean_diff"] <= row["ci_high"]


@pytest.mark.filterwarnings("error")
def test_slices_that_are_all_perfect_for_one_method_are_excluded_without_warnings():
    # per-slice PSNR is +inf on a perfect slice; UNet is perfect on every slice of v1 and, for SSIM's
    # stand-in metric, on every slice of every volume
    per_volume = pd.concat([volumes_frame([30.0, 31.0, 32.0], "OUCR"), volumes_frame([29.0, 30.5, 31.0], "UNet")],
                           ignore_index=True)
    per_volume["ssim"] = 0.9
    per_slice = slices_from(per_volume, 2, spread=[0.0, 0.25])
    per_slice["ssim"] = np.where(per_slice["method"] == "UNet", np.inf, 0.9)
    per_slice.loc[(per_slice["method"] == "UNet") & (per_slice["volume"] == "v1"), "psnr"] = np.inf
    table = compare(per_volume, per_slice, n_bootstrap=400)
    psnr = row_of(table, "UNet", level="slice")
    assert (psnr["n"], psnr["n_slices"], psnr["n_excluded"]) == (2, 4, 2)
    assert psnr["mean_diff"] == pytest.approx(np.mean([1.0, 1.0, 1.0, 1.0]))
    # the sign-flip statistic sums the used slices only: v0 and v2 differ by 1 on both slices
    assert psnr["signflip_p"] == pytest.approx(0.5) and psnr["signflip_min_p"] == pytest.approx(0.5)
    ssim = row_of(table, "UNet", metric="ssim", level="slice")
    assert (ssim["n"], ssim["n_slices"], ssim["n_excluded"]) == (0, 0, 6)
    assert np.isnan(ssim["mean_diff"]) and np.isnan(ssim["mean_reference"]) and np.isnan(ssim["mean_method"])
    assert (ssim["sign_agree"], ssim["sign_pairs"]) == (0, 0)
    assert np.isnan(ssim["ci_low"]) and np.isnan(ssim["signflip_p"])


@pytest.mark.filterwarnings("error")
def test_constant_differences_and_rounding_noise_without_warnings():
    other = np.array([28.05, 31.95, 29.3, 30.9, 28.45])
    # a constant 0.1 that floating point does not represent exactly: rounding noise around a constant
    per_volume = pd.concat([volumes_frame(other + 0.1, "OUCR"), volumes_frame(other, "UNet"),
                            volumes_frame(other + 0.1 + 1e-14 * np.array([1, -1, 0, 1, 0]), "CS")],
                           ignore_index=True)
    assert np.ptp((other + 0.1) - other) > 0  # the differences do vary, by rounding
    table = compare(per_volume, n_bootstrap=100)
    unet = row_of(table, "UNet")
    assert unet["t_stat"] == np.inf and unet["t_p"] == 0.0 and unet["cohen_dz"] == np.inf
    assert unet["dz_ci_low"] == np.inf and unet["dz_ci_high"] == np.inf
    cs = row_of(table, "CS")  # differences within rounding of zero are zero: no test at all
    assert cs["mean_diff"] == 0.0 and np.isnan(cs["t_p"]) and np.isnan(cs["wilcoxon_p"])
    assert cs["wilcoxon_method"] == "none" and np.isnan(cs["cohen_dz"]) and np.isnan(cs["dz_ci_low"])
    assert (cs["sign_agree"], cs["sign_pairs"]) == (1, 1)  # the one pair is 'zero' like the mean
    assert np.isnan(row_of(table, "CS", level="slice")["signflip_p"])


def test_floors_are_capped_at_one_after_holm():
    per_volume = pd.concat([volumes_frame([30.0, 31.0], "OUCR")] + [
        volumes_frame([30.0 - k, 31.0 - 2 * k], m) for k, m in ((1, "UNet"), (2, "CS"), (3, "D5C5"))],
        ignore_index=True)
    volume = compare(per_volume, n_bootstrap=50).query("level == 'volume'")
    assert np.allclose(volume["wilcoxon_min_p"], 0.5) and (volume["wilcoxon_min_p_holm"] == 1.0).all()
    assert (volume["family_size"] == 3).all()


# ----------------------------------------------------------------------------- the helpers

def test_holm_edge_cases():

    np.testing.assert_array_equal(holm([0, 1]), [0.0, 1.0])  # integer p-values are fine
    assert holm([0, 1]).dtype == float
    np.testing.assert_allclose(holm([0.01], family_size=3), [0.03])  # the family may be larger than the list
    np.testing.assert_allclose(holm([0.02]), [0.02])
    assert np.isnan(holm([np.nan, np.nan])).all()
    with pytest.raises(ValueError, match="^family size 1 is smaller than the 2 p-values given$"):
        holm([0.01, 0.02], family_size=1)


def test_rounding_and_effect_size_helpers():
    assert paired_tests.rounding_tolerance(np.array([3.0, -8.0]), np.array([1.0])) == 16 * np.finfo(float).eps * 8.0
    assert paired_tests.rounding_tolerance(np.zeros((2, 0)), np.zeros((2, 0))) == 0.0  # nothing used: no scale
    np.testing.assert_array_equal(paired_tests.snap_zeros(np.array([1e-3, -1e-3, 2e-3]), 1e-3), [0.0, 0.0, 2e-3])
    # within the tolerance an SD is zero: +/-inf for a non-zero mean, NaN for a zero one (inclusive bounds)
    dz = paired_tests.cohen_dz(np.array([1.0, -1.0, 1e-4, 1e-3, 2.0]), np.array([1e-4, 1e-4, 1e-4, 1e-3, 4.0]), 1e-3)
    assert dz[0] == np.inf and dz[1] == -np.inf and np.isnan(dz[2]) and np.isnan(dz[3]) and dz[4] == 0.5


def test_sign_agreement_counts_a_difference_at_the_tolerance_as_zero():
    from oucr.stats import _sign_agreement

    ref = np.array([[1.0, 1.0], [1.5, 1.5], [1.5, 1.0]])  # three reference replicates over two units
    method = np.array([[1.0, 1.0]])  # one method replicate: pair differences 0, 0.5 and 0.25
    used = np.array([True, True])
    # a mean difference of exactly the tolerance is a zero: the zero pair and the 0.25 pair (snapped) agree
    assert _sign_agreement(ref, method, used, mean_diff=0.25, tol=0.25) == (2, 3)
    assert _sign_agreement(ref, method, used, mean_diff=0.3, tol=0.25) == (1, 3)  # positive: the 0.5 pair
    assert _sign_agreement(ref, method, used, mean_diff=-0.3, tol=0.25) == (0, 3)
    # only the first unit used: differences 0, 0.5 and 0.5
    assert _sign_agreement(ref, method, np.array([True, False]), mean_diff=0.3, tol=0.0) == (2, 3)


def test_wilcoxon_method_names_the_null_distribution():
    from oucr.paired_tests import paired_wilcoxon, wilcoxon_method

    assert wilcoxon_method(np.arange(1.0, 51.0)) == "exact"  # 50 tie-free differences: exact
    assert wilcoxon_method(np.arange(1.0, 52.0)) == "normal"
    assert wilcoxon_method(np.array([0.0, 1.0, 2.0])) == "ties-or-zeros"  # a zero
    assert wilcoxon_method(np.array([1.0, -1.0, 2.0])) == "ties-or-zeros"  # a tie in |d|
    assert wilcoxon_method(np.array([0.5, 2.0, 3.0])) == "exact"
    assert paired_wilcoxon(np.array([0.3])) == (0.0, 1.0, 1.0, "exact")
    stat, p, floor, method = paired_wilcoxon(np.array([0.0, 1.0, 2.0, 3.0, -4.0]))
    assert method == "ties-or-zeros" and floor == pytest.approx(sps.wilcoxon([0.0, 1.0, 2.0, 3.0, 4.0]).pvalue)
    assert floor > wilcoxon_floor(5)  # the zero is dropped: the floor is that of 4 differences
    assert paired_wilcoxon(np.zeros(4))[3] == "none" and paired_wilcoxon(np.array([]))[3] == "none"


def test_percentile_interval_ignores_undefined_resamples():
    from oucr.paired_tests import percentile_interval

    samples = np.column_stack([np.full(4, np.nan), [1.0, 2.0, np.nan, 3.0]])
    low, high = percentile_interval(samples, 0.5)
    assert low.dtype == float and high.dtype == float
    assert np.isnan(low[0]) and np.isnan(high[0]) and (low[1], high[1]) == (1.0, 3.0)


def test_methods_are_ordered_as_in_the_paper_and_unknown_ones_last():
    base = np.array([30.0, 31.0, 32.0])
    frames = [volumes_frame(base, "OUCR")] + [volumes_frame(base - 0.1 * (k + 1), m)
                                              for k, m in enumerate(["MyNet", "UNet", "Zero-filled", "CS", "AaNet"])]
    table = compare(pd.concat(frames, ignore_index=True), n_bootstrap=20)
    volume = table[table["level"] == "volume"]
    assert list(volume["method"]) == ["Zero-filled", "CS", "UNet", "AaNet", "MyNet"]


def test_unpaired_units_are_listed_by_example(tmp_path):
    ref = volumes_frame(np.arange(8.0), "OUCR")
    for lacking, listed in ((4, "v4, v5, v6, ..."), (3, "v5, v6, v7")):
        other = volumes_frame(np.arange(8.0), "UNet").iloc[: 8 - lacking]
        with pytest.raises(DataError) as err:
            compare(pd.concat([ref, other], ignore_index=True))
        assert err.value.path == "d x4 (volume level)"
        assert err.value.problem == (f"UNet and OUCR were evaluated on different volumes: UNet lacks {lacking} of the "
                                     f"reference's 8 ({listed}) and has 0 the reference lacks ()")


def test_non_finite_volume_metrics_name_the_group_and_volumes():
    per_volume = pd.concat([volumes_frame([30.0, 31.0, 32.0, 33.0], "OUCR", "knee", 8),
                            volumes_frame([29.0, np.inf, np.nan, np.inf], "UNet", "knee", 8)], ignore_index=True)
    with pytest.raises(DataError) as err:
        significance_table(per_volume.iloc[:0], per_volume, n_bootstrap=10)
    assert err.value.path == "knee x8 (volume level)"
    assert err.value.problem == "psnr is not finite for UNet or OUCR on 3 volumes (v1, v2, v3)"


def test_metrics_a_method_lacks_are_left_out_with_a_log_line(caplog):
    per_volume = pd.concat([volumes_frame([30.0, 31.0, 32.0], "OUCR"), volumes_frame([29.0, 30.5, 31.0], "UNet")],
                           ignore_index=True)
    per_volume["ssim"] = [0.9, 0.91, 0.92, 0.8, 0.85, 0.86]
    per_volume.loc[per_volume["method"] == "UNet", "psnr"] = np.nan  # UNet has no PSNR, but an SSIM
    with caplog.at_level("INFO", logger="oucr.stats"):
        table = compare(per_volume, n_bootstrap=20)
    assert set(table["metric"]) == {"ssim"}
    assert "d x4 (volume level): psnr not recorded for UNet or OUCR; not compared" in [
        r.getMessage() for r in caplog.records]


# ----------------------------------------------------------------------------- the Markdown summary, cell by cell

def _sig_row(**values):
    row = {c: np.nan for c in COLUMNS}
    row.update(reference="OUCR", n_bootstrap=2000, seed=2021, confidence=0.95, dataset="knee", acceleration=4,
               n_replicates_reference=1, n_replicates_method=1, sign_agree=1, sign_pairs=1)
    row.update(values)
    return row


def _hand_made_significance():
    """Rows with chosen values: every formatting rule of the summary has a cell below."""
    inf = np.inf
    return pd.DataFrame([
        _sig_row(level="volume", table="table1", metric="psnr", method="UNet", n=4, family_size=2,
                 mean_diff=0.51234, ci_low=0.1, ci_high=0.9, cohen_dz=1.234, dz_ci_low=0.5, dz_ci_high=inf,
                 wilcoxon_p=0.125, wilcoxon_p_holm=0.25, t_p=0.0123, t_p_holm=0.0246, wilcoxon_min_p=0.125,
                 wilcoxon_min_p_holm=0.25, n_replicates_reference=2, sign_agree=3, sign_pairs=4),
        _sig_row(level="volume", table="table1", metric="nmse", method="CS", n=4, family_size=2, mean_diff=-0.00123,
                 ci_low=-0.002, ci_high=-0.0005, cohen_dz=-inf, dz_ci_low=-inf, dz_ci_high=-inf, t_p=0.0,
                 t_p_holm=0.0, wilcoxon_min_p=0.125, wilcoxon_min_p_holm=0.25),
        _sig_row(level="slice", table="table1", metric="ssim", method="UNet", n=4, n_slices=12, family_size=1,
                 mean_diff=0.01234, ci_high=0.02, signflip_method="exact", signflip_p=0.125, signflip_p_holm=0.125,
                 signflip_min_p=0.125, signflip_min_p_holm=0.125, sign_agree=2, sign_pairs=2),
        _sig_row(level="volume", table="table2", metric="psnr", method="UC-CRNN", n=20, family_size=1, mean_diff=1.5,
                 ci_low=1.0, ci_high=2.0, cohen_dz=2.0, dz_ci_low=1.5, dz_ci_high=2.5, wilcoxon_p=1e-5,
                 wilcoxon_p_holm=1e-5, t_p=2e-6, t_p_holm=2e-6, wilcoxon_min_p=1.9e-6, wilcoxon_min_p_holm=1.9e-6),
        _sig_row(level="slice", table="table2", metric="psnr", method="UC-CRNN", n=20, n_slices=60, family_size=1,
                 mean_diff=1.25, ci_low=0.75, ci_high=1.75, signflip_method="monte-carlo", signflip_p=0.06,
                 signflip_p_holm=0.06, signflip_min_p=0.0004998, signflip_min_p_holm=0.0004998),
    ])


_SLICE_PARAGRAPH = (
    "Pooled mean of the per-slice differences with a hierarchical bootstrap interval (volumes resampled, then slices "
    "within each drawn volume); p from a cluster sign-flip test that flips all slices of a volume together. The "
    "slices of one volume are not independent, so this evidence rests on the same volumes as the volume level. ")

_EXPECTED_SUMMARY = "\n".join([
    "# Paired comparisons: OUCR against every other method\n",
    "> DEMO numbers.\n",
    "The test volume is the unit of inference. Differences are OUCR minus the method, in metric units: positive means "
    "OUCR scored higher, which is better for PSNR, SSIM, HaarPSI and VIF; for NMSE lower is better, so a negative NMSE "
    "difference favours OUCR. Each method's values are first averaged over its training replicates. Intervals are "
    "percentile bootstrap 95 % intervals over 2000 resamples of the volumes; d_z is the mean volume difference over "
    "its SD (+/-inf when every volume differs by the same amount). p-values are shown raw (Holm-adjusted), Holm over "
    "every dataset x acceleration x method of a table, separately per metric, level and test. The paired t-test has "
    "no floor on its p-value (it can be arbitrarily small at any n >= 2), but at small n it rests entirely on the "
    "assumption of normally distributed differences, which so few volumes cannot check.\n",
    "## Table 1\n",
    "### Volume level (one paired value per test volume)\n",
    # m = 2: 2 * 2 / 2**6 = 0.0625 >= 0.05 > 2 * 2 / 2**7
    "With n = 4 test volumes per comparison the smallest two-sided Wilcoxon p-value is 0.125, 0.25 after Holm over "
    "the 2 comparisons per metric of Table 1: no comparison can reach p < 0.05, whatever the methods; read the "
    "differences and intervals as descriptive. At least 7 volumes per comparison would be needed before a "
    "Holm-adjusted p < 0.05 were attainable.\n",
    "| Dataset | Acc | Metric | vs | n | mean diff [95% CI] | d_z [95% CI] | Wilcoxon p (Holm) | t-test p (Holm) "
    "| replicate sign agreement |\n"
    "|---|---|---|---|---|---|---|---|---|---|\n"
    "| knee | 4 | psnr | UNet | 4 | +0.512 [+0.100, +0.900] | +1.23 [+0.50, +inf] | 0.125 (0.25) | 0.0123 (0.0246) "
    "| 3/4 |\n"
    "| knee | 4 | nmse | CS | 4 | -1.23e-03 [-2.00e-03, -5.00e-04] | -inf [-inf, -inf] | - (-) | 0 (0) | - |\n",
    "### Slice level (descriptive)\n",
    _SLICE_PARAGRAPH + "With n = 4 test volumes per comparison the smallest cluster sign-flip p-value is 0.125, "
    "0.125 after Holm over the 1 comparison per metric of Table 1: no comparison can reach p < 0.05, whatever the "
    "methods; read the differences and intervals as descriptive. At least 6 volumes per comparison would be needed "
    "before a Holm-adjusted p < 0.05 were attainable.\n",
    "| Dataset | Acc | Metric | vs | n volumes | n slices | mean slice diff [hierarchical 95% CI] "
    "| sign-flip p (Holm) |\n"
    "|---|---|---|---|---|---|---|---|\n"
    "| knee | 4 | ssim | UNet | 4 | 12 | +0.0123 [-, +0.0200] | 0.125 (0.125) |\n",
    "## Table 2 (ablation)\n",
    "### Volume level (one paired value per test volume)\n",
    "With n = 20 test volumes per comparison the smallest two-sided Wilcoxon p-value is 1.9e-06, 1.9e-06 after Holm "
    "over the 1 comparison per metric of Table 2 (ablation): p < 0.05 is reachable; 1 of the 1 volume-level "
    "comparisons have a Holm-adjusted two-sided Wilcoxon p < 0.05.\n",
    "| Dataset | Acc | Metric | vs | n | mean diff [95% CI] | d_z [95% CI] | Wilcoxon p (Holm) | t-test p (Holm) |\n"
    "|---|---|---|---|---|---|---|---|---|\n"
    "| knee | 4 | psnr | UC-CRNN | 20 | +1.500 [+1.000, +2.000] | +2.00 [+1.50, +2.50] | 1e-05 (1e-05) "
    "| 2e-06 (2e-06) |\n",
    "### Slice level (clustered by volume)\n",
    _SLICE_PARAGRAPH + "With n = 20 test volumes per comparison the smallest cluster sign-flip p-value is 0.0005, "
    "0.0005 after Holm over the 1 comparison per metric of Table 2 (ablation) (with 2000 random sign flips the floor "
    "is 1 / (flips + 1); raise --bootstrap to lower it): p < 0.05 is reachable; 0 of the 1 slice-level comparisons "
    "have a Holm-adjusted cluster sign-flip p < 0.05.\n",
    "| Dataset | Acc | Metric | vs | n volumes | n slices | mean slice diff [hierarchical 95% CI] "
    "| sign-flip p (Holm) |\n"
    "|---|---|---|---|---|---|---|---|\n"
    "| knee | 4 | psnr | UC-CRNN | 20 | 60 | +1.250 [+0.750, +1.750] | 0.06 (0.06) |\n",
])


def test_markdown_summary_formats_every_cell(tmp_path):
    sig = _hand_made_significance()
    assert significance_markdown(sig, True, "DEMO numbers.") == _EXPECTED_SUMMARY
    # as `oucr tables` reads it back from the CSV: the counts stay integers ("12", not "12.0")
    sig.to_csv(tmp_path / "sig.csv", index=False)
    assert significance_markdown(pd.read_csv(tmp_path / "sig.csv"), True, "DEMO numbers.") == _EXPECTED_SUMMARY


def test_markdown_summary_defaults():
    sig = _hand_made_significance()
    plain = significance_markdown(sig, False)
    assert plain == _EXPECTED_SUMMARY.replace("> DEMO numbers.\n\n", "")
    assert significance_markdown(sig, True).splitlines()[2] == "> DEMO numbers: not comparable with the paper."
    # files of older versions: no table column (derived from the method), no reference, no bootstrap count
    old = sig.drop(columns=["table", "reference"])
    assert significance_markdown(old, True, "DEMO numbers.") == _EXPECTED_SUMMARY
    exact_only = sig.iloc[:4]
    assert significance_markdown(exact_only.assign(n_bootstrap=np.nan), False) == \
        significance_markdown(exact_only, False)  # the default 2000 resamples are stated
    assert significance_markdown(sig.iloc[:0], False) == (
        "# Paired comparisons: OUCR against every other method\n\nNo comparisons.\n")
    assert significance_markdown(sig.iloc[:0].drop(columns="reference"), True, "x") == (
        "# Paired comparisons: OUCR against every other method\n\n> x\n\nNo comparisons.\n")
    other = significance_markdown(sig.assign(reference="D5C5"), False)
    assert other.startswith("# Paired comparisons: D5C5 against every other method\n")
    assert "Differences are D5C5 minus the method" in other


def test_markdown_helpers():
    md = stats_markdown
    fmt_p, fmt_num, fmt_dz = md._fmt_p, md._fmt_num, md._fmt_dz
    assert fmt_p(np.nan) == "-" and fmt_p(0.012345) == "0.0123" and fmt_p(1.0) == "1"
    assert fmt_num(np.nan, "psnr") == "-" and fmt_num(np.inf, "psnr") == "+inf"
    assert fmt_num(-np.inf, "nmse") == "-inf" and fmt_num(0.0, "ssim") == "+0.0000"
    assert fmt_num(-0.12345, "psnr") == "-0.123" and fmt_num(0.12345, "haarpsi") == "+0.1235"
    assert fmt_num(0.000123, "nmse") == "+1.23e-04"
    assert fmt_dz(np.nan) == "-" and fmt_dz(np.inf) == "+inf" and fmt_dz(-np.inf) == "-inf"
    assert fmt_dz(0.5) == "+0.50" and fmt_dz(-1.234) == "-1.23"
    assert md._interval(1.0, 0.5, 2.0, fmt_dz) == "+1.00 [+0.50, +2.00]"
    # a replicate table column appears as soon as either side has replicates
    rows = _hand_made_significance().iloc[[0]].assign(n_replicates_reference=1, n_replicates_method=2)
    assert "replicate sign agreement" in md._volume_view(rows).columns
    assert "replicate sign agreement" in md._slice_view(rows).columns
    assert "replicate sign agreement" not in md._volume_view(rows.assign(n_replicates_method=1)).columns
    assert list(md._slice_view(rows)["replicate sign agreement"]) == ["3/4"]
    assert list(md._slice_view(rows.assign(sign_pairs=1))["replicate sign agreement"]) == ["-"]
    # 7 comparisons: 7 * 2 / 2**8 = 0.055 is not below 0.05, 7 * 2 / 2**9 = 0.027 is
    assert md._needed_volumes(1) == 6 and md._needed_volumes(7) == 9 and md._needed_volumes(2) == 7


# ----------------------------------------------------------------------------- reading, every message

@pytest.mark.parametrize("content, problem", [
    (b"", "metrics file is empty"),
    (b"method,dataset,acceleration,volume,psnr\n", "metrics file has a header but no rows"),
    (b"method,dataset,acceleration,volume,psnr\nOUCR,d,4,v0,30\nOUCR,d,4,,31\n", "empty volume in line 3"),
    (b"method,dataset,acceleration,volume,psnr\nOUCR,d,4,v0,30\n,d,4,v1,31\n", "empty method in line 3"),
    (b"method,dataset,acceleration,volume,psnr\nOUCR,d,4,v0,30\nOUCR,d,4,v1,31\nOUCR,d,4,v2,x\nOUCR,d,4,v3,y\n",
     "non-numeric psnr value 'x' in line 4"),
    (b"method,dataset,acceleration,volume,psnr\nOUCR,d,4,v0,30\nOUCR,d,4.5,v1,31\nOUCR,d,4.5,v2,31\n",
     "acceleration must be an integer, got 4.5 in line 3"),
    (b"method,dataset,acceleration,volume,slice,psnr\nOUCR,d,4,v0,0,30\nOUCR,d,4,v0,one,31\n",
     "slice must be an integer, got 'one' in line 3"),
    (b"method,dataset,acceleration,volume,replicate,psnr\nOUCR,d,4,v0,0,30\nOUCR,d,4,v1,,31\n",
     "replicate must be an integer, got nan in line 3"),
    (b"method,dataset,volume,psnr\nOUCR,d,v0,30\n",
     "metrics file lacks the column(s) acceleration (it has method, dataset, volume, psnr)"),
])
def test_damaged_metric_files_name_file_and_line(tmp_path, content, problem):
    path = tmp_path / "m.csv"
    path.write_bytes(content)
    with pytest.raises(DataError) as err:
        read_metric_files([path])
    assert (err.value.path, err.value.problem) == (str(path), problem)


def test_unparseable_metric_file_names_the_error(tmp_path):
    path = tmp_path / "m.csv"
    path.write_bytes(b"method,dataset,acceleration,volume,psnr\nOUCR,d,4,v0,30\nOUCR,d,4,v1,30,1,2\n")
    with pytest.raises(DataError) as err:
        read_metric_files([path])
    assert err.value.problem.startswith("not a readable metrics file (ParserError: ")


def test_metric_files_keep_identifiers_as_text_and_numbers_typed(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("method,dataset,acceleration,volume,slice,replicate,psnr,psnr_low\n"
                    "7,2021,4.0,001,0,1,30,29\n7,2021,4,002,1.0,1,31,30\n")
    frame = read_metric_files([path], required=("slice",))
    assert list(frame["volume"]) == ["001", "002"] and list(frame["dataset"]) == ["2021", "2021"]
    assert list(frame["method"]) == ["7", "7"]
    for col in ("acceleration", "slice", "replicate"):
        assert frame[col].dtype.kind == "i", col
    assert frame["psnr"].dtype == float and frame["psnr_low"].dtype == float
    assert list(frame.index) == [0, 1]
    with pytest.raises(DataError) as err:
        read_metric_files([path], required=("slice", "condition"))
    assert err.value.problem.startswith("metrics file lacks the column(s) condition (it has ")


def test_metric_files_are_concatenated_with_a_fresh_index_and_replicate_zero(tmp_path):
    volumes_frame([30.0, 31.0], "OUCR", replicate=2).to_csv(tmp_path / "a.csv", index=False)
    volumes_frame([29.0, 30.0], "UNet").to_csv(tmp_path / "b.csv", index=False)
    frame = read_metric_files([tmp_path / "a.csv", tmp_path / "b.csv"])
    assert list(frame.index) == [0, 1, 2, 3] and "_file" not in frame.columns
    assert list(frame["replicate"]) == [2, 2, 0, 0] and frame["replicate"].dtype.kind == "i"
    with pytest.raises(DataError) as err:
        read_metric_files([])
    assert (err.value.path, err.value.problem) == ("(none)", "no metrics files given")
    with pytest.raises(DataError) as err:
        read_metric_files([tmp_path / "a.csv", tmp_path / "missing.csv"])
    assert (err.value.path, err.value.problem) == (str(tmp_path / "missing.csv"), "metrics file does not exist")


@pytest.mark.parametrize("column, values", [("dataset", ["knee", "brain"]), ("acceleration", [4, 8]),
                                            ("condition", ["nominal", "noise"])])
def test_rows_differing_in_one_key_are_not_duplicates(tmp_path, column, values):
    for name, value in zip("ab", values):
        volumes_frame([30.0], "OUCR").assign(**{column: value}).to_csv(tmp_path / f"{name}.csv", index=False)
    assert len(read_metric_files([tmp_path / "a.csv", tmp_path / "b.csv"])) == 2


def test_duplicated_rows_name_both_files_and_the_first_clash(tmp_path):
    volumes_frame([30.0, 31.0], "OUCR").to_csv(tmp_path / "a.csv", index=False)
    volumes_frame([30.5, 31.5], "OUCR").to_csv(tmp_path / "b.csv", index=False)
    with pytest.raises(DataError) as err:
        read_metric_files([tmp_path / "a.csv", tmp_path / "b.csv"])
    assert err.value.path == f"{tmp_path / 'a.csv'}, {tmp_path / 'b.csv'}"
    assert err.value.problem == ("2 duplicated metric rows, e.g. {'method': 'OUCR', 'dataset': 'd', "
                                 "'acceleration': 4, 'volume': 'v0'}")


# ----------------------------------------------------------------------------- the command line

def test_command_line_options_defaults_and_help():
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--slices", "s.csv", "--volumes", "v1.csv", "v2.csv", "--out", "o.csv"])
    assert (args.reference, args.bootstrap, args.seed) == ("OUCR", 2000, 2021)
    assert [str(p) for p in args.volumes] == ["v1.csv", "v2.csv"] and str(args.out) == "o.csv"
    args = parser.parse_args(["--slices", "s.csv", "--volumes", "v.csv", "--out", "o.csv", "--bootstrap", "1",
                              "--seed", "0", "--reference", "D5C5"])
    assert (args.reference, args.bootstrap, args.seed) == ("D5C5", 1, 0)
    helps = {a.dest: a.help for a in parser._actions if a.dest != "help"}
    assert helps == {
        "slices": "per-slice metric CSVs of `oucr evaluate` (a file named twice counts once)",
        "volumes": "per-volume metric CSVs of `oucr evaluate` (a file named twice counts once)",
        "reference": "the method compared with every other one (default: OUCR)",
        "out": "output CSV (columns in the module docstring)",
        "bootstrap": "bootstrap resamples per group, also the random sign flips of the slice-level test above 16 "
                     "volumes (default: 2000)",
        "seed": "non-negative seed of the bootstrap, combined with each group's identity (default: 2021)",
    }
    assert {a.dest: a.metavar for a in parser._actions}["bootstrap"] == "N"
    for option, value, message in (("--bootstrap", "0", "must be at least 1, got 0"),
                                   ("--bootstrap", "x", "'x' is not an integer"),
                                   ("--seed", "-1", "must be at least 0, got -1")):
        with pytest.raises(argparse.ArgumentTypeError, match=f"^{message}$"):
            {a.dest: a.type for a in parser._actions}[option[2:]](value)
    for missing in ("--slices", "--volumes", "--out"):
        argv = ["--slices", "s", "--volumes", "v", "--out", "o"]
        i = argv.index(missing)
        with pytest.raises(SystemExit):
            parser.parse_args(argv[:i] + argv[i + 2:])


def test_command_writes_both_levels_and_logs(tmp_path, caplog):
    import time

    volumes, slices = _write_inputs(tmp_path)
    args = argparse.Namespace(slices=[slices], volumes=[volumes], reference="OUCR", out=tmp_path / "o.csv",
                              bootstrap=40, seed=5)
    start = time.perf_counter()
    with caplog.at_level("INFO", logger="oucr.stats"):
        assert run(args) == 0
    elapsed = time.perf_counter() - start
    table = pd.read_csv(tmp_path / "o.csv")
    assert set(table["level"]) == {"volume", "slice"} and (table["n_bootstrap"] == 40).all()
    assert (table["seed"] == 5).all() and len(table) == 12
    message = [r.getMessage() for r in caplog.records if r.name == "oucr.stats"][-1]
    prefix = f"wrote 12 comparisons to {tmp_path / 'o.csv'} in "
    assert message.startswith(prefix) and message.endswith(" s")
    assert 0 <= float(message[len(prefix):-2]) <= elapsed + 0.01  # the time of this run, not a clock reading
    pd.read_csv(slices).drop(columns="slice").to_csv(tmp_path / "noslice.csv", index=False)
    with pytest.raises(DataError, match=r"lacks the column\(s\) slice "):
        run(argparse.Namespace(**{**vars(args), "slices": [tmp_path / "noslice.csv"]}))


def test_rounding_tolerance_scales_with_the_larger_values_of_either_method():
    # 16 eps of the largest |value| of both methods: 3.6e-13 for UNet's pair (OUCR's 100), 5.3e-13 for CS's (its 150)
    ref = np.array([100.0, 40.0, 41.0])
    unet = np.array([50.0, 40.0 - 2.5e-13, 40.0])
    cs = np.array([150.0, 40.0 - 4.5e-13, 40.0])
    per_volume = pd.concat([volumes_frame(ref, "OUCR"), volumes_frame(unet, "UNet"), volumes_frame(cs, "CS")],
                           ignore_index=True)
    table = compare(per_volume, slices_from(per_volume, 1), n_bootstrap=20)
    for level in ("volume", "slice"):
        assert row_of(table, "UNet", level=level)["mean_diff"] == 17.0  # (50 + 0 + 1) / 3 exactly
        assert row_of(table, "CS", level=level)["mean_diff"] == (-50.0 + 1.0) / 3
    assert row_of(table, "UNet")["wilcoxon_method"] == "ties-or-zeros"  # the snapped zero


def test_a_mean_difference_of_pure_rounding_agrees_with_zero_pair_differences():
    method = np.array([34.13, 31.07, 32.29])
    ref = method + np.array([0.09, 0.87, -0.96])
    d = ref - method
    assert d.mean() != 0 and abs(d.mean()) < 1e-13  # the three differences cancel but for rounding
    per_volume = pd.concat([volumes_frame(ref, "OUCR"), volumes_frame(method, "UNet")], ignore_index=True)
    row = row_of(compare(per_volume, n_bootstrap=20), "UNet")
    assert (row["sign_agree"], row["sign_pairs"]) == (1, 1)  # the pair's zero mean shares the zero sign


def test_paired_t_and_holm_boundaries():

    assert paired_t(np.array([0.5, 0.5])) == (np.inf, 0.0)  # two equal differences: sd 0, not a division by 0
    assert all(np.isnan(paired_t(np.zeros(3))))
    t, p = paired_t(np.array([0.5, 0.25]))  # two pairs are enough
    assert t == pytest.approx(sps.ttest_rel([0.5, 0.25], [0.0, 0.0]).statistic) and 0 < p < 1
    assert all(np.isnan(paired_t(np.array([0.5]))))
    np.testing.assert_allclose(holm([0.8, 0.9]), [1.0, 1.0])  # capped at 1 before the running maximum


def test_signflip_helpers():
    patterns, exact = signflip_patterns(16, 10, np.random.default_rng(0))
    assert exact and patterns.shape == (2 ** 16, 16)  # 16 volumes are still enumerated
    random_patterns, exact = signflip_patterns(17, 10, np.random.default_rng(0))
    assert not exact and random_patterns.shape == (10, 17)
    patterns, _ = signflip_patterns(2, 1, np.random.default_rng(0))
    # the tolerance for ties is relative to each column's own sums
    p = signflip_p(np.array([[1e6, 1.0, 0.0], [1e6, 0.0004, 0.0]]), patterns, True)
    assert p.dtype == float and p[0] == 0.5 and p[1] == 0.5 and np.isnan(p[2])


def test_replicate_zero_is_the_absent_replicate_value():
    # UNet's second replicate comes from a file without the column (NaN after concatenation): replicate 0
    per_volume = pd.concat([volumes_frame([30.0, 31.0, 32.0], "OUCR"),
                            volumes_frame([29.0, 30.0, 31.0], "UNet", replicate=1),
                            volumes_frame([29.5, 30.5, 31.5], "UNet")], ignore_index=True)
    row = row_of(compare(per_volume, slices_from(per_volume, 1), n_bootstrap=20), "UNet")
    assert row["n_replicates_method"] == 2 and row["mean_method"] == pytest.approx(30.25)


def test_duplicated_keys_with_different_values_are_refused():
    per_volume = pd.concat([volumes_frame([30.0, 31.0], "OUCR"), volumes_frame([29.0, 30.0], "UNet"),
                            volumes_frame([28.0], "UNet")], ignore_index=True)  # v0 twice, other values
    with pytest.raises(DataError) as err:
        compare(per_volume)
    assert err.value.path == "d x4 (volume level)"
    assert err.value.problem == "1 duplicated rows, e.g. {'method': 'UNet', 'volume': 'v0', 'replicate': 0}"


def test_groups_without_the_reference_are_skipped_with_a_warning(caplog):
    per_volume = pd.concat([volumes_frame([30.0, 31.0], "UNet", dataset="a"),
                            volumes_frame([30.0, 31.0], "OUCR", dataset="b"),
                            volumes_frame([29.0, 30.5], "UNet", dataset="b")], ignore_index=True)
    with caplog.at_level("WARNING", logger="oucr.stats"):
        table = compare(per_volume, n_bootstrap=20)
    assert set(table["dataset"]) == {"b"} and len(table) == 2
    assert "a x4 (volume level): no rows of the reference OUCR; its methods are not compared" in [
        r.getMessage() for r in caplog.records]
    with pytest.raises(DataError) as err:
        compare(per_volume[per_volume["method"] == "UNet"])
    assert (err.value.path, err.value.problem) == ("metrics files", "the reference method 'OUCR' has no rows")


def test_table_arguments_and_inputs_are_checked():
    per_volume = pd.concat([volumes_frame([30.0, 31.0], "OUCR"), volumes_frame([29.0, 30.0], "UNet")],
                           ignore_index=True)
    per_slice = slices_from(per_volume, 1)
    for bad, message in ((dict(n_bootstrap=0), "^n_bootstrap must be at least 1, got 0$"),
                         (dict(seed=-1), "^seed must be non-negative, got -1$")):
        with pytest.raises(ValueError, match=message):
            significance_table(per_slice, per_volume, **{"n_bootstrap": 10, **bad})
    one = significance_table(per_slice, per_volume, n_bootstrap=1, seed=0)  # the smallest valid values
    assert len(one) == 2 and (one["n_bootstrap"] == 1).all()
    with pytest.raises(DataError) as err:
        significance_table(per_slice.drop(columns="slice"), per_volume, n_bootstrap=10)
    assert (err.value.path, err.value.problem) == ("slice metrics", "missing columns ['slice']")
    only_slices = significance_table(per_slice, per_volume.iloc[:0], n_bootstrap=10)
    assert list(only_slices["level"]) == ["slice"]
    for level, frame in (("volume", per_volume), ("slice", per_slice)):
        mixed = frame.assign(condition=["noise"] + [np.nan] * (len(frame) - 1))  # a missing condition counts
        args = (mixed, per_volume) if level == "slice" else (per_slice, mixed)
        with pytest.raises(DataError) as err:
            significance_table(*args, n_bootstrap=10)
        assert err.value.path == f"{level} metrics"
    same = significance_table(per_slice.assign(condition="noise"), per_volume.assign(condition="noise"),
                              n_bootstrap=10)
    assert len(same) == 2


def test_rows_are_ordered_by_level_table_dataset_acceleration_metric_and_method():
    frames = []
    for dataset, acc in (("b", 8), ("a", 8), ("a", 4)):
        for k, method in enumerate(["OUCR", "UNet", "OC-CRNN", "CS"]):
            frame = volumes_frame(np.array([30.0, 31.0, 32.5]) - 0.3 * k, method, dataset, acc)
            frames.append(frame.assign(nmse=0.01 + 0.001 * k + np.array([0.0, 0.002, 0.001])))
    table = compare(pd.concat(frames, ignore_index=True), n_bootstrap=10)
    keys = list(zip(table["level"], table["table"], table["dataset"], table["acceleration"], table["metric"],
                    table["method"]))
    expected = [(level, tab, d, a, metric, method)
                for level in ("volume", "slice") for tab in ("table1", "table2")
                for d, a in (("a", 4), ("a", 8), ("b", 8)) for metric in ("psnr", "nmse")
                for method in (["CS", "UNet"] if tab == "table1" else ["OC-CRNN"])]
    assert keys == expected
    assert list(table.index) == list(range(len(table)))
    for col in ("acceleration", "n", "n_slices", "family_size", "seed"):
        assert str(table[col].dtype) == "Int64", col


def test_markdown_states_floors_at_the_boundary_and_for_several_sizes():
    rows = pd.DataFrame([
        # n = 4 with no floor recorded (every difference zero): the exact floor of 4 differences is used
        _sig_row(level="volume", table="table1", metric="psnr", method="UNet", n=4, family_size=3,
                 wilcoxon_min_p=np.nan, n_bootstrap=500),
        # n = 2 in a family of 3: 3 * 0.5 is capped at 1
        _sig_row(level="volume", table="table1", metric="psnr", method="CS", n=2, family_size=3, wilcoxon_min_p=0.5),
        # exactly 0.05: not below it
        _sig_row(level="volume", table="table1", metric="psnr", method="D5C5", n=5, family_size=1,
                 wilcoxon_min_p=0.05, wilcoxon_p_holm=0.05),
        _sig_row(level="volume", table="table1", metric="psnr", method="KIKI-Net", n=20, family_size=1,
                 wilcoxon_min_p=1e-6, wilcoxon_p_holm=0.05),
        _sig_row(level="slice", table="table1", metric="psnr", method="UNet", n=5, n_slices=10, family_size=1,
                 signflip_method="exact", signflip_min_p=0.05, signflip_min_p_holm=0.05, signflip_p_holm=0.05),
    ])
    md = significance_markdown(rows, False)
    assert "over 500 resamples of the volumes" in md
    assert ("With n = 2 test volumes per comparison the smallest two-sided Wilcoxon p-value is 0.5, 1 after Holm "
            "over the 3 comparisons") in md
    assert ("descriptive. At least 7 volumes per comparison would be needed before a Holm-adjusted p < 0.05 were "
            "attainable. With n = 4 test volumes per comparison the smallest two-sided Wilcoxon p-value is 0.125, "
            "0.375 after Holm") in md  # sentences joined by one space, in increasing n
    assert "With n = 5 test volumes per comparison the smallest two-sided Wilcoxon p-value is 0.05, 0.05 after " \
           "Holm over the 1 comparison per metric of Table 1: no comparison can reach p < 0.05" in md
    assert "p < 0.05 is reachable; 0 of the 1 volume-level comparisons have a Holm-adjusted" in md
    assert "### Slice level (descriptive)" in md
    assert "smallest cluster sign-flip p-value is 0.05, 0.05 after Holm over the 1 comparison per metric of " \
           "Table 1: no comparison can reach" in md


def test_markdown_of_one_table2_row_and_a_file_given_table_column():
    row = _hand_made_significance().iloc[[3]].assign(n_bootstrap=300)
    md = significance_markdown(row, False)
    assert "## Table 1" not in md and "## Table 2 (ablation)" in md and "over 300 resamples" in md
    custom = _hand_made_significance().iloc[[0]].assign(method="MyVariant", table="table2")
    assert "## Table 2 (ablation)" in significance_markdown(custom, False)  # the file's table column decides
    agree = _hand_made_significance().iloc[[0]].assign(sign_agree=1, sign_pairs=2)
    assert list(stats_markdown._volume_view(agree)["replicate sign agreement"]) == ["1/2"]
    assert list(stats_markdown._slice_view(agree)["replicate sign agreement"]) == ["1/2"]


def test_command_line_takes_several_files_as_paths():
    from pathlib import Path

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--slices", "s1.csv", "s2.csv", "--volumes", "v.csv", "--out", "o.csv"])
    assert [str(p) for p in args.slices] == ["s1.csv", "s2.csv"]
    assert all(isinstance(p, Path) for p in args.slices + args.volumes + [args.out])

