"""The figures: readable layouts (no overlapping or clipped text), stated scales, the files they read."""

from __future__ import annotations

import itertools
import json

import h5py
import numpy as np
import pandas as pd
import pytest

from oucr import figures as F
from oucr import metrics, paths
from oucr.errors import DataError
from oucr.names import OUCR_FULL, sweep_name

THREE = ["CS", "UNet", "OUCR"]
#: nine columns besides the zero-filled one, long ablation names included
NINE = ["CS", "UNet", "KIKI-Net", "Kiu-net", "D5C5", "PC-RNN", "OUCR", "UC-CRNN + OC-CRNN", OUCR_FULL]
#: (methods, datasets, accelerations): the smallest case, and the demo's shape with nine methods
SIZES = [(THREE, ["demo-brain"], [4]), (NINE, ["demo-brain", "demo-fastmri"], [4, 8])]
SIZE_IDS = ["3-methods-1-dataset", "9-methods-2-datasets"]  # (2 accelerations in the second)
#: trained methods (CS has no training history), ablation variants and a sweep run among them
TRAINED = [(["UNet", "D5C5", "OUCR"], ["demo-brain"]),
           (["UNet", "KIKI-Net", "Kiu-net", "D5C5", "PC-RNN", "OUCR", "UC-CRNN + OC-CRNN", "OC-CRNN + RM",
             sweep_name(2)], ["demo-brain", "demo-fastmri"])]


def make_config(methods, datasets, demo=True, order=None, accelerations=(4,), **extra):
    config = {"demo": demo, "methods": list(methods), "datasets": {d: {} for d in datasets},
              "accelerations": {a: {"center_fraction": 0.32 / a} for a in accelerations}, **extra}
    if order is not None:
        config["figures"] = {"dataset_order": list(order)}
    return config


# The layout check -----------------------------------------------------------------------------


def drawn_texts(fig):
    """``(text, window extent)`` of every visible, non-empty text the renderer drew.

    Text artists that ``fig.canvas.draw()`` does not draw (tick labels of ticks
    outside the view limits that matplotlib keeps for reuse) are not visible on the
    figure, so they are left out: the spy on ``Text.draw`` records what is drawn.
    """
    from matplotlib.text import Text

    drawn = set()
    original = Text.draw

    def spy(self, renderer):
        drawn.add(id(self))
        return original(self, renderer)

    Text.draw = spy
    try:
        fig.canvas.draw()
    finally:
        Text.draw = original
    renderer = fig.canvas.get_renderer()
    texts = [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip() and id(t) in drawn]
    return [(t, t.get_window_extent(renderer)) for t in texts]


def assert_readable(fig):
    """No two drawn text boxes overlap, and every one lies inside the figure."""
    boxes = drawn_texts(fig)
    assert boxes
    frame = fig.bbox
    outside = [t.get_text() for t, b in boxes
               if b.x0 < frame.x0 - 0.5 or b.y0 < frame.y0 - 0.5 or b.x1 > frame.x1 + 0.5 or b.y1 > frame.y1 + 0.5]
    assert not outside, f"text outside the figure: {outside[:5]}"
    overlaps = [(a.get_text(), b.get_text()) for (a, ba), (b, bb) in itertools.combinations(boxes, 2)
                if ba.overlaps(bb)]
    assert not overlaps, f"{len(overlaps)} overlapping text pairs, e.g. {overlaps[:5]}"
    return [t for t, _ in boxes]


def all_text(fig):
    return [t.get_text() for t, _ in drawn_texts(fig)]


def close(fig):
    F.common.pyplot().close(fig)


# Fig. 3 ---------------------------------------------------------------------------------------


def fig3_panels(methods, datasets, accelerations=(4,), size=32, seed=0):
    rng = np.random.default_rng(seed)
    panels = []
    for dataset, acc in itertools.product(datasets, accelerations):
        reference = rng.random((size, size)).astype(np.float32) * 3
        shown = [F.MethodSlice(m, reference + rng.normal(scale=0.3 / (k + 1), size=reference.shape),
                               30.0 + k, 0.8 + 0.01 * k) for k, m in enumerate(["Zero-filled"] + list(methods))]
        panels.append(F.Fig3Panel(dataset, acc, "file1000001", 2, reference, shown))
    return panels


@pytest.mark.parametrize("methods,datasets,accs", SIZES, ids=SIZE_IDS)
def test_fig3_text_never_overlaps_and_errors_share_one_stated_scale(methods, datasets, accs):
    panels = fig3_panels(methods, datasets, accs)
    fig = F.draw_fig3(panels, make_config(methods, datasets, accelerations=accs))
    texts = assert_readable(fig)
    strings = [t.get_text() for t in texts]
    assert any("DEMO" in s for s in strings)
    assert any("99.5th percentile of the zero-filled error" in s for s in strings)  # the caption states the scale
    for panel in panels:
        for m in panel.methods:  # every panel's metrics are drawn, legibly
            label = next(t for t in texts if t.get_text() == f"PSNR {m.psnr:.2f} dB\nSSIM {m.ssim:.4f}")
            assert label.get_fontsize() >= 7
        headers = [t for t in texts if t.get_text().replace("\n", " ") in {m.method for m in panel.methods}]
        assert len(headers) >= len(panel.methods)
    # one error image per dataset x acceleration: limits 0 .. the zero-filled 99.5th percentile, with its colour bar
    error_images = [im for ax in fig.axes for im in ax.get_images() if im.get_cmap().name.startswith("inferno")]
    assert len(error_images) == len(panels)
    for image, panel in zip(error_images, panels):
        zero_filled = panel.methods[0].image
        clip = np.percentile(np.abs(zero_filled - panel.reference) / panel.reference.max(), 99.5)
        assert image.get_clim() == pytest.approx((0.0, clip))
        assert image.colorbar is not None and "|error| / max(ref)" in image.colorbar.ax.get_ylabel()
        assert f"clipped at {clip:.3g}" in image.colorbar.ax.get_ylabel()
    close(fig)


def write_results(tmp_path, datasets, methods, chunks=2):
    """Stores and replicate-0 reconstructions in the results layout of ``oucr.paths``."""
    from oucr.data.store import PreparedVolume, write_store
    from oucr.figures.fig3 import run_of
    from oucr.recon_io import write_reconstruction

    rng = np.random.default_rng(1)
    for dataset in datasets:
        energy = np.array([1, 3, 2])[:, None, None]  # slice 1 is the most energetic one
        volumes = [PreparedVolume(volume=f"{dataset}-v{i}", subject=f"s{i}", split=split, source="synthetic",
                                  format="magnitude", slices=np.arange(3),
                                  target=(rng.random((3, 16, 16)) * energy).astype(np.complex64))
                   for i, split in enumerate(["train", "test", "test"])]
        write_store(paths.store_dir(tmp_path, dataset), volumes)
        for k, method in enumerate(["Zero-filled"] + methods):
            folders = paths.recon_dirs(tmp_path, dataset, 4, run_of(method), replicate=0, cs_chunks=chunks)
            for v, volume in enumerate(volumes[1:]):
                recon = np.abs(volume.target) + rng.normal(scale=0.1 * (k + 1), size=volume.target.shape)
                # CS: the first test volume (the one Fig. 3 shows) in the last chunk folder
                write_reconstruction(folders[(v + 1) % len(folders)] / f"{volume.volume}.h5", recon.astype(np.float32),
                                     method, dataset, 4)
    return tmp_path


def capture_saves(monkeypatch, module):
    """Replace ``module.save_figure`` by a recorder (the files are tested once, in the command test)."""
    saved = []
    monkeypatch.setattr(module, "save_figure", lambda fig, out: saved.append((fig, out)))
    return saved


def test_fig3_reads_replicate_0_of_the_results_layout_in_the_dataset_order(tmp_path, monkeypatch):
    from oucr.data.store import PreparedStore
    from oucr.recon_io import read_reconstruction

    methods = ["CS", "UNet"]
    results = write_results(tmp_path, ["brain", "knee"], methods)
    config = make_config(methods, ["brain", "knee"], order=["knee"], results=str(results), cs={"chunks": 2})
    panels = F.read_fig3_panels(config)
    assert [p.dataset for p in panels] == ["knee", "brain"]  # dataset_order first, then the config's order
    knee = panels[0]
    target = np.abs(PreparedStore(paths.store_dir(results, "knee")).load("knee-v1")["target"])
    assert knee.volume == "knee-v1" and knee.slice == F.pick_slice(target) == 1
    assert [m.method for m in knee.methods] == ["Zero-filled", "CS", "UNet"]
    unet, _ = read_reconstruction(paths.recon_dir(results, "knee", 4, "unet") / "knee-v1.h5")
    assert knee.methods[2].psnr == pytest.approx(metrics.psnr_per_slice(target, unet)[1])
    assert knee.methods[2].ssim == pytest.approx(metrics.ssim_per_slice(target, unet)[1])
    saved = capture_saves(monkeypatch, F.fig3)
    F.figure3(config, tmp_path / "fig3.png")
    (fig, out), = saved
    assert out == tmp_path / "fig3.png" and fig.get_suptitle().startswith("Fig. 3")
    close(fig)
    (paths.recon_dir(results, "brain", 4, "unet") / "brain-v1.h5").unlink()
    with pytest.raises(DataError, match="brain-v1"):
        F.read_fig3_panels(config)


# Fig. 4 ---------------------------------------------------------------------------------------


def slice_metrics(methods, datasets, accelerations=(4,), seed=0):
    rng = np.random.default_rng(seed)
    rows = [dict(method=m, dataset=d, acceleration=a, volume=f"v{v}", slice=s, psnr=30.0, ssim=0.9,
                 psnr_low=rng.normal(35, 2), ssim_low=rng.random(), psnr_high=rng.normal(25, 2), ssim_high=rng.random())
            for m in ["Zero-filled"] + list(methods) for d in datasets for a in accelerations for v in range(2)
            for s in range(3)]
    return pd.DataFrame(rows)


@pytest.mark.parametrize("methods,datasets,accs", SIZES, ids=SIZE_IDS)
def test_fig4_text_never_overlaps_and_follows_the_dataset_order(methods, datasets, accs):
    accs = accs[:1]  # a second acceleration adds columns like a second dataset does (and 8 slow box-plot panels)
    order = list(reversed(datasets))
    fig = F.draw_fig4(make_config(methods, datasets, order=order, accelerations=accs),
                      slice_metrics(methods, datasets, accs))
    assert_readable(fig)
    titles = [ax.get_title() for ax in fig.axes[: len(datasets) * len(accs)]]  # the top row, left to right
    assert titles == [f"{d} {a}x: low-frequency band" for d in order for a in accs]
    assert any("DEMO" in s for s in all_text(fig))
    close(fig)


def test_fig4_averages_each_slice_over_replicates():
    from oucr.figures.fig4 import replicate_means

    one = slice_metrics(THREE, ["demo-brain"])
    two = pd.concat([one.assign(replicate=0), one.assign(replicate=1, psnr_low=one["psnr_low"] + 2)])
    averaged = replicate_means(two)
    assert len(averaged) == len(one)
    assert averaged["psnr_low"].to_numpy() == pytest.approx(one["psnr_low"].to_numpy() + 1)
    assert averaged["ssim_high"].to_numpy() == pytest.approx(one["ssim_high"].to_numpy())
    assert replicate_means(one) is one


def test_fig4_boxes_have_the_statistics_of_matplotlibs_boxplot():
    from matplotlib.collections import LineCollection, PolyCollection

    from oucr.figures.fig4 import draw_boxes

    rng = np.random.default_rng(3)
    # 3.2 lies beyond 1.5 IQR above the upper quartile of the second sample (but within 3 IQR)
    data = [rng.normal(size=40), np.r_[rng.normal(size=30), 3.2], np.array([]), np.array([2.0])]
    fig = F.common.new_figure(4, 3)
    ours, theirs = fig.subplots(1, 2)
    draw_boxes(ours, data)
    drawn = theirs.boxplot([d if d.size else [np.nan] for d in data], showfliers=False)
    boxes = next(c for c in ours.collections if isinstance(c, PolyCollection)).get_paths()
    medians = [c for c in ours.collections if isinstance(c, LineCollection)][1].get_segments()
    assert len(boxes) == len(medians) == 3  # no box for the empty array
    for k, (box, median) in enumerate(zip(boxes, medians)):
        index = [0, 1, 3][k]
        assert (box.vertices[:, 1].min(), box.vertices[:, 1].max()) == pytest.approx(
            (drawn["boxes"][index].get_ydata().min(), drawn["boxes"][index].get_ydata().max()))
        assert median[0][1] == pytest.approx(drawn["medians"][index].get_ydata()[0])
    whiskers = [c for c in ours.collections if isinstance(c, LineCollection)][0].get_segments()
    ends = sorted(seg[1][1] for seg in whiskers[4:8:1] if seg[0][0] == seg[1][0])  # second box: x = 2
    assert ends == pytest.approx(sorted(w.get_ydata()[1] for w in drawn["whiskers"][2:4]))  # 3.2 is no whisker end
    close(fig)


# Iterations -----------------------------------------------------------------------------------


def sweep_metrics(values, replicates=1, default=3, seed=0):
    rng = np.random.default_rng(seed)
    rows = [dict(method="OUCR" if j == default else sweep_name(j), dataset="demo-brain", acceleration=4,
                 volume=f"v{v}", replicate=r, psnr=30 + j + rng.normal(), ssim=0.8 + 0.01 * j + 0.01 * rng.random())
            for j in values for r in range(replicates) for v in range(4)]
    return pd.DataFrame(rows)


@pytest.mark.parametrize("values", [[1, 2, 3], list(range(1, 10))], ids=["3-points", "9-points"])
def test_iterations_text_never_overlaps_and_says_what_the_error_bars_are(values):
    config = {"demo": True, "models": {"OUCR": {"iterations": 3}}}
    volumes = sweep_metrics(values).drop(columns="replicate")
    fig = F.draw_iterations(config, volumes)
    strings = [t.get_text() for t in assert_readable(fig)]
    assert any("Error bars: SD over the 4 test volumes" in s for s in strings)
    assert any("DEMO" in s for s in strings)
    close(fig)
    summary = F.iterations_summary(config, volumes)
    by_hand = volumes[volumes["method"] == "OUCR"]["psnr"]
    row = summary[summary["J"] == 3].iloc[0]
    assert row["psnr"] == pytest.approx(by_hand.mean()) and row["psnr_sd"] == pytest.approx(by_hand.std())


def test_iterations_error_bars_over_replicates_are_the_sd_of_per_replicate_means():
    config = {"models": {"OUCR": {"iterations": 3}}}
    volumes = pd.concat([sweep_metrics([3], replicates=3), sweep_metrics([1], replicates=1)])
    summary = F.iterations_summary(config, volumes).set_index("J")
    means = volumes[volumes["method"] == "OUCR"].groupby("replicate")["psnr"].mean()
    assert summary.loc[3, "sd_over"] == "replicates" and summary.loc[3, "replicates"] == 3
    assert summary.loc[3, "psnr_sd"] == pytest.approx(means.std())
    assert summary.loc[1, "sd_over"] == "volumes"
    fig = F.draw_iterations(config, volumes)
    caption = fig.get_supxlabel().replace("\n", " ")
    assert "J = 3: SD across the 3 trained replicates of the per-replicate mean" in caption
    assert "J = 1 (one replicate each): SD over the 4 test volumes" in caption
    assert not any("DEMO" in s for s in all_text(fig))  # no DEMO label without `demo: true`
    close(fig)


# Fig. 1 ---------------------------------------------------------------------------------------


def feature_maps(channels=4, size=32, seed=0):
    rng = np.random.default_rng(seed)
    maps = {"input": rng.random((size, size))}
    for b, side in (("uc", size // 4), ("oc", size * 2)):
        maps[b] = rng.normal(size=(channels, side, side)).astype(np.float32)
        maps[f"{b}_channels"] = np.arange(channels) + 5
        erf = np.exp(-((np.arange(size) - size // 2) ** 2) / 8.0)
        maps[f"{b}_erf"] = np.outer(erf, erf) / np.outer(erf, erf).sum()
    rf = pd.DataFrame([dict(branch=b, init=init, iterations=its, size=size, fraction=0.95, radius=2.0 + k,
                            extent=4, clipped=False) for k, (b, init, its) in
                       enumerate(itertools.product(("oc", "uc"), ("trained", "fresh"), (1, 2)))])
    return maps, rf


def test_fig1_text_never_overlaps_and_maps_have_stated_scales(tmp_path, monkeypatch):
    maps, rf = feature_maps()
    fig = F.draw_fig1({"demo": True}, maps, rf, {"iterations": 3})
    strings = [t.get_text().replace("\n", " ") for t in assert_readable(fig)]
    assert any("DEMO" in s for s in strings)
    assert any("cell output, last iteration (J = 3): channel 5, one of the 4 strongest (8x8 px)" in s for s in strings)
    assert any("ERF: normalised |∂ centre output / ∂ input|" in s for s in strings)
    assert any("radius holding 95 % of the mass: trained 2.0 px, fresh 4.0 px" in s for s in strings)  # oc, 1 iteration
    bars = [im.colorbar.ax.get_xlabel() + im.colorbar.ax.get_ylabel() for ax in fig.axes for im in ax.get_images()
            if im.colorbar is not None]
    assert sorted(b.replace("\n", " ") for b in set(bars)) == ["ERF / its max", "cell output, min-max per channel"]
    close(fig)
    rf.to_csv(tmp_path / "rf.csv", index=False)
    with pytest.raises(DataError, match="missing.csv"):
        F.read_receptive_fields(tmp_path / "missing.csv")
    rf.drop(columns="radius").to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(DataError, match="radius"):
        F.read_receptive_fields(tmp_path / "bad.csv")
    with h5py.File(tmp_path / "features.h5", "w") as f:
        for key, value in maps.items():
            f.create_dataset(key, data=value)
        f.attrs["iterations"] = 3
    saved = capture_saves(monkeypatch, F.fig1)
    F.figure1({}, tmp_path / "features.h5", tmp_path / "rf.csv", tmp_path / "fig1_features.png")
    (fig, _), = saved
    assert fig.get_suptitle().startswith("Fig. 1c/d") and "DEMO" not in fig.get_suptitle()
    close(fig)


# Convergence ----------------------------------------------------------------------------------


def histories(methods, datasets, replicates=2, epochs=6, seed=0, accelerations=(4, 8)):
    from oucr.names import method_slug

    rng = np.random.default_rng(seed)
    rows = [dict(run=method_slug(m), method=m, dataset=d, acceleration=a, replicate=r, epoch=e, train_loss=0.1,
                 val_psnr=20 + k + np.log(e) + rng.random(), val_ssim=0.8, val_nmse=0.01, lr=1e-3, seconds=1.0,
                 slices_per_second=10.0)
            for k, m in enumerate(methods) for d in datasets for a in accelerations for r in range(replicates)
            for e in range(1, epochs + 1)]
    return pd.DataFrame(rows)


@pytest.mark.parametrize("trained,datasets", TRAINED, ids=SIZE_IDS)
def test_convergence_text_never_overlaps_one_legend_one_colour_per_method(trained, datasets):
    from matplotlib.collections import PolyCollection
    from matplotlib.legend import Legend

    order = list(reversed(datasets))
    fig = F.draw_convergence(make_config(["CS"] + trained[:-1], datasets, order=order), histories(trained, datasets),
                             all_runs=True)
    assert_readable(fig)
    assert any("DEMO" in s for s in all_text(fig))
    assert len(fig.findobj(Legend)) == 1
    panels = [ax for ax in fig.axes if ax.lines]
    assert [ax.get_title() for ax in panels] == [f"{d} {a}x" for d in order for a in (4, 8)]
    labels = [t.get_text() for t in fig.findobj(Legend)[0].get_texts()]
    assert labels == trained  # Table 1 in the config's order, then ablation variants, then the sweep
    colours = [[tuple(line.get_color()) for line in ax.lines] for ax in panels]
    assert all(c == colours[0] for c in colours) and len(set(colours[0])) == len(colours[0])
    for ax in panels:  # a min-max band per method: two replicates each
        assert len([c for c in ax.collections if isinstance(c, PolyCollection)]) == len(colours[0])
    close(fig)


def test_convergence_draws_table1_methods_unless_all_runs():
    config = make_config(["UNet", "OUCR"], ["demo-brain"])
    frame = histories(["UNet", "OUCR", "UC-CRNN + RM", sweep_name(2)], ["demo-brain"], replicates=1)
    fig = F.draw_convergence(config, frame)
    assert [len(ax.lines) for ax in fig.axes if ax.lines] == [2, 2]
    assert not [c for ax in fig.axes for c in ax.collections]  # one replicate: no band
    assert "one trained replicate per method" in fig.get_supxlabel().replace("\n", " ")
    close(fig)
    fig = F.draw_convergence(config, frame, all_runs=True)
    from matplotlib.legend import Legend

    assert [t.get_text() for t in fig.findobj(Legend)[0].get_texts()] == ["UNet", "OUCR", "UC-CRNN + RM", "OUCR J=2"]
    close(fig)
    with pytest.raises(DataError, match="--all-runs"):
        F.draw_convergence(config, frame[frame["method"] == "UC-CRNN + RM"])


@pytest.mark.parametrize("damage,match", [
    ("missing", "does not exist"),
    ("binary", "not a readable training history|lacks"),
    ("empty", "training history is empty"),
    ("no-column", r"training history lacks the column\(s\) val_psnr \(it has run, "),
    ("text-epoch", "non-numeric.*epoch"),
])
def test_a_damaged_history_is_one_data_error_naming_the_file(tmp_path, damage, match):
    good = tmp_path / "good.csv"
    histories(["UNet"], ["demo-brain"], replicates=1).to_csv(good, index=False)
    bad = tmp_path / "bad_history.csv"
    frame = histories(["OUCR"], ["demo-brain"], replicates=1)
    if damage == "binary":
        bad.write_bytes(b"\x89HDF\r\n\x1a\n\x00\x00\xff\xfe" * 20)
    elif damage == "empty":
        bad.write_text("")
    elif damage == "no-column":
        frame.drop(columns="val_psnr").to_csv(bad, index=False)
    elif damage == "text-epoch":
        frame.assign(epoch="first").to_csv(bad, index=False)
    with pytest.raises(DataError, match=match) as err:
        F.read_histories([good, bad])
    assert err.value.path == str(bad)


def test_the_same_run_in_two_histories_is_a_data_error(tmp_path):
    for name in ("a.csv", "b.csv"):
        histories(["UNet"], ["demo-brain"], replicates=1).to_csv(tmp_path / name, index=False)
    assert len(F.read_histories([tmp_path / "a.csv", tmp_path / "a.csv"])) == 12  # a file named twice counts once
    with pytest.raises(DataError, match="a.csv, .*b.csv.*same run"):
        F.read_histories([tmp_path / "a.csv", tmp_path / "b.csv"])


def test_convergence_command_writes_png_and_pdf(tmp_path, capsys):
    from oucr.cli import main

    files = []
    for r in range(2):
        frame = histories(["UNet", "OUCR"], ["demo-brain"], replicates=1, seed=r, accelerations=(4,))
        frame = frame.assign(replicate=r)
        files.append(tmp_path / f"r{r}.csv")
        frame.to_csv(files[-1], index=False)
    config = json.dumps(make_config(["UNet", "OUCR"], ["demo-brain"], demo=False))
    out = tmp_path / "figures" / "convergence.png"
    assert main(["figures", "convergence", "--config", config, "--histories", *map(str, files),
                 "--out", str(out)]) == 0
    assert out.is_file() and out.with_suffix(".pdf").is_file()
    assert main(["figures", "convergence", "--config", config, "--histories", str(tmp_path / "nope.csv"),
                 "--out", str(out)]) == 2
    assert "nope.csv" in capsys.readouterr().err


# Help -----------------------------------------------------------------------------------------


def test_every_figure_subcommand_and_option_has_help(capsys, monkeypatch):
    import argparse

    monkeypatch.setenv("COLUMNS", "400")  # argparse wraps at the terminal width: one line per subcommand
    from oucr.cli import build_parser

    parser = build_parser("figures")
    figures = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices["figures"]
    sub = next(a for a in figures._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) == {"fig3", "fig4", "fig1", "iterations", "convergence"}
    listed = {choice.dest: choice.help for choice in sub._choices_actions}
    for name, subparser in sub.choices.items():
        assert listed[name] and listed[name] == F.FIGURES[name]
        for action in subparser._actions:
            assert action.help, f"oucr figures {name} {action.option_strings} has no help"
    with pytest.raises(SystemExit):
        parser.parse_args(["figures", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    for name, text in F.FIGURES.items():  # each subcommand listed with what it draws
        assert f"{name} {' '.join(text.split())}" in shown, name
