"""Atomic outputs and the HDF5 reader's error handling (oucr.io)."""

from __future__ import annotations

import threading

import h5py
import numpy as np
import pytest

from oucr.errors import DataError
from oucr.io import atomic_directory, open_hdf5


def test_replacing_a_folder_leaves_no_moment_without_one(tmp_path):
    final = tmp_path / "store"
    with atomic_directory(final) as tmp:
        (tmp / "v0").write_text("0")
    missing, stop = [], threading.Event()

    def watch() -> None:
        while not stop.is_set():
            if not (final / "MARK").exists() and not any(final.glob("v*")):
                missing.append(1)

    (final / "MARK").write_text("")  # every generation carries the marker
    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        for i in range(1, 60):
            with atomic_directory(final) as tmp:
                (tmp / f"v{i}").write_text(str(i))
                (tmp / "MARK").write_text("")
    finally:
        stop.set()
        watcher.join()
    assert not missing, f"the folder was absent {len(missing)} times while being replaced"
    assert sorted(p.name for p in final.iterdir()) == ["MARK", "v59"]
    assert [p.name for p in tmp_path.iterdir()] == ["store"]  # no temporary or old folder left


def test_a_failed_build_leaves_the_old_folder(tmp_path):
    final = tmp_path / "out"
    with atomic_directory(final) as tmp:
        (tmp / "old").write_text("kept")
    with pytest.raises(RuntimeError):
        with atomic_directory(final) as tmp:
            (tmp / "new").write_text("half")
            raise RuntimeError("crash while writing")
    assert [p.name for p in final.iterdir()] == ["old"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_open_hdf5_blames_the_file_only_for_its_own_errors(tmp_path):
    good = tmp_path / "good.h5"
    with h5py.File(good, "w") as f:
        f.create_dataset("x", data=np.random.default_rng(0).random((64, 64, 8)), chunks=(8, 8, 8),
                         compression="gzip")
    # the caller's own error inside the block is not reported as a corrupt file
    with pytest.raises(OSError, match="caller's own"):
        with open_hdf5(good) as f:
            raise OSError("the caller's own error")
    # a damaged file is, naming it
    damaged = tmp_path / "damaged.h5"
    data = bytearray(good.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 4000] = bytes(4000)
    damaged.write_bytes(bytes(data))
    with pytest.raises(DataError, match="truncated or corrupt") as err:
        with open_hdf5(damaged, "test file") as f:
            f["x"][()]
    assert err.value.path == str(damaged)
    with pytest.raises(DataError, match="does not exist"):
        with open_hdf5(tmp_path / "missing.h5"):
            pass


def test_read_csv_file_names_the_file_and_the_problem(tmp_path):
    from oucr.io import read_csv_file

    path = tmp_path / "runs.tsv"
    with pytest.raises(DataError) as err:
        read_csv_file(path, "run table", hint="; run `oucr train`")
    assert (err.value.path, err.value.problem) == (str(path), "run table does not exist; run `oucr train`")
    for content, problem in [
            (b"", "run table is empty"),
            (b"a\tb\n1\t2\n1\t2\t3\t4\n", "not a readable run table (ParserError: "),
            (b"\xff\xfe\x00\x81", "not a readable run table (UnicodeDecodeError: "),
            (b"a\tc\n1\t2\n", "run table lacks the column(s) b, d (it has a, c)")]:
        path.write_bytes(content)
        with pytest.raises(DataError) as err:
            read_csv_file(path, "run table", ("a", "b", "d"), sep="\t")
        assert err.value.path == str(path) and err.value.problem.startswith(problem), content
    path.write_text("a\tb\n007\t2\n")
    frame = read_csv_file(path, "run table", ("a", "b"), sep="\t", dtype={"a": str})  # arguments reach pandas
    assert list(frame["a"]) == ["007"] and list(frame["b"]) == [2]
    path.write_text("a\tb\n")
    assert read_csv_file(path, "run table", ("a",), sep="\t").empty  # a header alone is the caller's call
