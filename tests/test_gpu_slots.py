"""GPU slots: exclusive per-GPU locks across processes, freed on exit or SIGKILL, all-or-nothing.

No GPU is needed: ``OUCR_GPU_SLOTS`` (or ``total``) simulates the machine's GPUs. The
cross-process tests start real processes at one barrier and check the intervals during
which each held its GPUs: two intervals on one GPU must never overlap.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Callable, Dict, List, Optional

import pytest

from oucr.engine import gpu_slots
from oucr.engine.gpu_devices import (
    default_lock_dir,
    lock_path,
    parse_nvidia_smi_list,
    parse_visible_devices,
    visible_gpu_ids,
)
from oucr.engine.gpu_holders import describe_slots
from oucr.engine.gpu_slots import GpuSlotError, GpuSlotTimeout, claim_gpus, gpu_environment
from oucr.errors import ConfigError

_VARIABLES = ("CUDA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER", "SLURM_JOB_ID", "OUCR_GPU_SLOTS", "OUCR_GPU_LOCK_DIR")

# One claimant: waits for the `go` file, claims, records (ids, CUDA_VISIBLE_DEVICES, start, end).
CHILD = r"""
import json, logging, os, sys, time
from pathlib import Path
logging.basicConfig(level=logging.INFO, format="%(message)s")
from oucr.engine.gpu_slots import claim_gpus
opts = json.loads(sys.argv[1])
out = Path(opts["out"])
Path(opts["out"] + ".ready").touch()
while opts.get("go") and not os.path.exists(opts["go"]):
    time.sleep(0.005)
claim = claim_gpus(opts["count"], lock_dir=Path(opts["lock_dir"]), timeout=20, poll=0.02)
t_start = time.time()
ids, visible = list(claim.ids), os.environ.get("CUDA_VISIBLE_DEVICES")
Path(opts["out"] + ".held").touch()
while opts.get("until") and not os.path.exists(opts["until"]):
    time.sleep(0.01)
time.sleep(opts.get("hold", 0.0))
t_end = time.time()
claim.release()
out.write_text(json.dumps({"ids": ids, "visible": visible, "t_start": t_start, "t_end": t_end}))
"""


_REAL_TORCH_PROBE = gpu_slots._torch_cuda_initialised


@pytest.fixture
def lock_dir(monkeypatch, tmp_path) -> Path:
    """A private lock folder, with every variable the claim reads unset (also in children).

    The in-process claims stand for fresh job processes, so the CUDA probes answer "not
    initialised" even where other tests of this session have initialised CUDA on a GPU.
    """
    for name in _VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(gpu_slots, "_torch_cuda_initialised", lambda: False)
    monkeypatch.setattr(gpu_slots, "_cuda_driver_initialised", lambda: False)
    yield tmp_path / "locks"
    for claim in list(gpu_slots._ENVIRONMENT_CLAIMS):  # a failed test must not leak its claim
        claim.release()


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


class Claimants:
    """Child processes running CHILD, each with its own output file."""

    def __init__(self, tmp_path: Path, lock_dir: Path, slots: int) -> None:
        self.tmp, self.lock_dir = tmp_path, lock_dir
        self.env = {k: v for k, v in os.environ.items() if k not in _VARIABLES}
        self.env["OUCR_GPU_SLOTS"] = str(slots)
        self.procs: List[subprocess.Popen] = []
        self.outs: List[str] = []

    def start(self, count: int, env: Optional[Dict[str, str]] = None, **opts) -> int:
        i = len(self.procs)
        out = str(self.tmp / f"claimant{i}")
        opts.update(out=out, count=count, lock_dir=str(self.lock_dir))
        with open(out + ".log", "w") as log:
            self.procs.append(subprocess.Popen(
                [sys.executable, "-c", CHILD, json.dumps(opts)], env={**self.env, **(env or {})},
                stdout=log, stderr=subprocess.STDOUT,
            ))
        self.outs.append(out)
        return i

    def log(self, i: int) -> str:
        return Path(self.outs[i] + ".log").read_text()

    def finish(self) -> List[dict]:
        results = []
        for i, proc in enumerate(self.procs):
            assert proc.wait(timeout=60) == 0, self.log(i)
            results.append(json.loads(Path(self.outs[i]).read_text()))
        return results

    def kill_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.fixture
def claimants(tmp_path, lock_dir):
    made: List[Claimants] = []

    def make(slots: int) -> Claimants:
        made.append(Claimants(tmp_path, lock_dir, slots))
        return made[-1]

    yield make
    for c in made:
        c.kill_all()


def _start_together(group: Claimants, counts: List[int], hold: float, tmp_path: Path) -> List[dict]:
    go = tmp_path / "go"
    for count in counts:
        group.start(count, go=str(go), hold=hold)
    _wait_for(lambda: all(Path(o + ".ready").exists() for o in group.outs), "every claimant to start")
    go.touch()
    return group.finish()


def _assert_no_shared_gpu(results: List[dict]) -> None:
    by_gpu: Dict[str, List[tuple]] = {}
    for r in results:
        for gpu in r["ids"]:
            by_gpu.setdefault(gpu, []).append((r["t_start"], r["t_end"]))
    for gpu, spans in by_gpu.items():
        spans.sort()
        for (_, end), (start, _) in zip(spans[:-1], spans[1:]):
            assert start >= end, f"two claimants held GPU {gpu} at once: {spans}"


def _lock_is_free(path: Path) -> bool:
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def test_parse_visible_devices_reads_like_cuda():
    assert parse_visible_devices("0,1") == ["0", "1"]
    assert parse_visible_devices(" 2, 3 ,2") == ["2", "3"]
    assert parse_visible_devices("") == []
    assert parse_visible_devices("-1") == []
    assert parse_visible_devices("0,-1,2") == ["0"]  # CUDA stops at the first invalid entry
    assert parse_visible_devices("NoDevFiles") == []
    uuids = ["GPU-8e7a1b2c-0000-1111", "MIG-GPU-aa/1/0"]
    assert parse_visible_devices(",".join(uuids)) == uuids


def test_parse_nvidia_smi_list_gives_indices_or_mig_uuids():
    plain = (
        "GPU 0: NVIDIA RTX A6000 (UUID: GPU-11111111-aaaa)\n"
        "GPU 1: NVIDIA RTX A6000 (UUID: GPU-22222222-bbbb)\n"
    )
    assert parse_nvidia_smi_list(plain) == ["0", "1"]
    mig = (
        "GPU 0: NVIDIA A100-SXM4-40GB (UUID: GPU-11111111-aaaa)\n"
        "  MIG 3g.20gb     Device  0: (UUID: MIG-33333333-cccc)\n"
        "  MIG 3g.20gb     Device  1: (UUID: MIG-44444444-dddd)\n"
        "GPU 1: NVIDIA A100-SXM4-40GB (UUID: GPU-22222222-bbbb)\n"
    )
    assert parse_nvidia_smi_list(mig) == ["MIG-33333333-cccc", "MIG-44444444-dddd", "GPU-22222222-bbbb"]
    assert parse_nvidia_smi_list("No devices found.\n") == []


def test_concurrent_jobs_each_get_their_own_gpu(claimants, lock_dir, tmp_path):
    results = _start_together(claimants(2), [1, 1, 1, 1], hold=0.3, tmp_path=tmp_path)
    _assert_no_shared_gpu(results)
    assert {r["ids"][0] for r in results} == {"0", "1"}, "both GPUs should be used"
    for r in results:
        assert r["visible"] == r["ids"][0], "CUDA_VISIBLE_DEVICES must name the claimed GPU"
    # both GPUs busy at the same time at some point: the lock is per GPU, not per machine
    assert any(a["ids"] != b["ids"] and a["t_start"] < b["t_end"] and b["t_start"] < a["t_end"]
               for a in results for b in results)


def test_multi_gpu_claims_are_exclusive_and_all_finish(claimants, lock_dir, tmp_path):
    results = _start_together(claimants(3), [2, 2, 2], hold=0.2, tmp_path=tmp_path)
    for r in results:
        assert len(set(r["ids"])) == 2
        assert r["visible"] == ",".join(r["ids"])
    _assert_no_shared_gpu(results)  # any two 2-of-3 claims share a GPU, so they ran one after another


def test_killed_holder_frees_its_gpu(claimants, lock_dir, tmp_path, capsys):
    group = claimants(1)
    holder = group.procs[group.start(1, until=str(tmp_path / "never"))]
    _wait_for(lambda: Path(group.outs[0] + ".held").exists(), "the holder to claim")
    [slot] = describe_slots(lock_dir)
    assert (slot.slot, slot.held, slot.pid) == ("0", True, holder.pid)
    gpu_slots.run(argparse.Namespace(lock_dir=lock_dir))
    assert f"GPU 0: held by pid {holder.pid}" in capsys.readouterr().out
    with pytest.raises(GpuSlotTimeout, match="busy: 0"):
        claim_gpus(1, lock_dir=lock_dir, total=1, timeout=0.2, poll=0.02)

    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)
    assert not describe_slots(lock_dir)[0].held
    with claim_gpus(1, lock_dir=lock_dir, total=1, timeout=5, poll=0.02) as claim:
        assert claim.ids == ("0",)


# A launcher: claims without touching its own environment, starts a child that inherits the
# lock descriptors and waits for the `until` file, then waits to be killed.
LAUNCHER = r"""
import json, os, subprocess, sys, time
from pathlib import Path
from oucr.engine.gpu_slots import claim_gpus, gpu_environment
opts = json.loads(sys.argv[1])
claim = claim_gpus(1, lock_dir=Path(opts["lock_dir"]), timeout=20, poll=0.02, set_environment=False)
wait = "import os, sys, time\nwhile not os.path.exists(sys.argv[1]): time.sleep(0.01)"
child = subprocess.Popen([sys.executable, "-c", wait, opts["until"]], env=gpu_environment(claim),
                         pass_fds=claim.lock_fds)
Path(opts["out"]).write_text(json.dumps({"child": child.pid}))  # the child runs
time.sleep(120)
"""


def test_launched_child_keeps_the_gpu_after_the_launcher_is_killed(lock_dir, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in _VARIABLES}
    env["OUCR_GPU_SLOTS"] = "1"
    out, until = tmp_path / "launcher.json", tmp_path / "child_may_exit"
    opts = {"lock_dir": str(lock_dir), "out": str(out), "until": str(until)}
    launcher = subprocess.Popen([sys.executable, "-c", LAUNCHER, json.dumps(opts)], env=env)
    try:
        _wait_for(out.exists, "the launcher to start its child")
        launcher.send_signal(signal.SIGKILL)
        launcher.wait(timeout=30)
        assert describe_slots(lock_dir)[0].held, "the running child must keep the GPU claimed"
        until.touch()
        _wait_for(lambda: not describe_slots(lock_dir)[0].held, "the GPU to be free once the child exits")
    finally:
        until.touch()
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()


def test_waiting_multi_gpu_claim_holds_no_gpu(claimants, lock_dir, tmp_path):
    group = claimants(2)
    release_one = tmp_path / "release_one"
    group.start(1, env={"CUDA_VISIBLE_DEVICES": "1"}, until=str(release_one))  # holds GPU 1
    _wait_for(lambda: Path(group.outs[0] + ".held").exists(), "GPU 1 to be held")
    group.start(2)  # needs both GPUs, so it waits
    _wait_for(lambda: "waiting for 2 free GPU(s)" in group.log(1), "the 2-GPU claimant to wait")

    assert not any(s.held for s in describe_slots(lock_dir) if s.slot == "0")
    with claim_gpus(1, lock_dir=lock_dir, total=2, timeout=5, poll=0.02) as claim:
        assert claim.ids == ("0",), "GPU 0 must stay free while the 2-GPU claimant waits"
    release_one.touch()
    one, both = group.finish()
    assert one["ids"] == ["1"]
    assert both["ids"] == ["0", "1"] and both["visible"] == "0,1"


def test_claim_sets_the_environment_and_release_restores_it(lock_dir):
    with claim_gpus(1, lock_dir=lock_dir, total=2, timeout=5) as claim:
        assert claim.ids == ("0",)
        assert os.environ["CUDA_VISIBLE_DEVICES"] == "0"
        assert os.environ["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"  # indices are nvidia-smi's
        assert not _lock_is_free(lock_path(lock_dir, "0"))
        record = json.loads(lock_path(lock_dir, "0").read_text())
        assert record["pid"] == os.getpid() and record["slot"] == "0"
        child_env = gpu_environment(claim, base={"PATH": "/bin"})
        assert child_env == {"PATH": "/bin", "CUDA_VISIBLE_DEVICES": "0", "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
    assert "CUDA_VISIBLE_DEVICES" not in os.environ and "CUDA_DEVICE_ORDER" not in os.environ
    assert _lock_is_free(lock_path(lock_dir, "0"))
    assert not claim.active and gpu_environment(claim, base={}) == {}


def test_launcher_claim_leaves_own_environment_alone(lock_dir):
    claim = claim_gpus(2, lock_dir=lock_dir, total=3, timeout=5, set_environment=False)
    try:
        assert claim.visible_devices == "0,1"
        assert "CUDA_VISIBLE_DEVICES" not in os.environ
        assert gpu_environment(claim, base={})["CUDA_VISIBLE_DEVICES"] == "0,1"
        assert not _lock_is_free(lock_path(lock_dir, "1"))
    finally:
        claim.release()
    assert _lock_is_free(lock_path(lock_dir, "1"))


def test_existing_visible_devices_restrict_the_claim(lock_dir, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5,7")
    monkeypatch.setenv("OUCR_GPU_SLOTS", "8")
    assert visible_gpu_ids() == ["5", "7"]
    lock_dir.mkdir()
    other = os.open(lock_path(lock_dir, "5"), os.O_RDWR | os.O_CREAT)  # another job holds GPU 5
    fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
    try:
        with claim_gpus(1, lock_dir=lock_dir, timeout=5) as claim:
            assert claim.ids == ("7",)
            assert os.environ["CUDA_VISIBLE_DEVICES"] == "7"
            assert "CUDA_DEVICE_ORDER" not in os.environ  # the given ids keep their meaning
        assert os.environ["CUDA_VISIBLE_DEVICES"] == "5,7"
    finally:
        os.close(other)


def test_uuid_entries_are_claimed_by_uuid(lock_dir, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "MIG-GPU-aaaa/1/0,GPU-bbbb-2222")
    with claim_gpus(2, lock_dir=lock_dir, total=1, timeout=5) as claim:
        assert os.environ["CUDA_VISIBLE_DEVICES"] == "MIG-GPU-aaaa/1/0,GPU-bbbb-2222"
        assert {s.slot for s in describe_slots(lock_dir) if s.held} == set(claim.ids)
    assert sorted(p.name for p in lock_dir.iterdir()) == ["gpu-GPU-bbbb-2222.lock", "gpu-MIG-GPU-aaaa_1_0.lock"]


def test_no_gpu_or_zero_count_claims_nothing(lock_dir, monkeypatch):
    cases = [  # (count, variables): inactive claims
        (1, {"OUCR_GPU_SLOTS": "0"}),
        (1, {"OUCR_GPU_SLOTS": "0", "CUDA_VISIBLE_DEVICES": "0"}),  # a stray variable on a CPU machine
        (0, {"OUCR_GPU_SLOTS": "2"}),
        (1, {"OUCR_GPU_SLOTS": "2", "CUDA_VISIBLE_DEVICES": ""}),
        (1, {"OUCR_GPU_SLOTS": "2", "SLURM_JOB_ID": "42"}),  # SLURM gave this job no GPU
    ]
    for count, variables in cases:
        with monkeypatch.context() as m:
            for name, value in variables.items():
                m.setenv(name, value)
            before = dict(os.environ)
            claim = claim_gpus(count, lock_dir=lock_dir, timeout=1)
            assert not claim.active and claim.visible_devices is None, variables
            assert dict(os.environ) == before
    assert not lock_dir.exists()


def test_impossible_requests_fail_at_once(lock_dir, monkeypatch):
    with pytest.raises(ConfigError, match="only 2 are visible"):
        claim_gpus(3, lock_dir=lock_dir, total=2, timeout=1)
    with pytest.raises(ConfigError, match="0 or more"):
        claim_gpus(-1, lock_dir=lock_dir, total=2, timeout=1)
    monkeypatch.setenv("OUCR_GPU_SLOTS", "two")
    with pytest.raises(ConfigError, match="OUCR_GPU_SLOTS"):
        claim_gpus(1, lock_dir=lock_dir, timeout=1)


def test_refuses_once_cuda_is_initialised(lock_dir, monkeypatch):
    monkeypatch.setattr(gpu_slots, "_torch_cuda_initialised", _REAL_TORCH_PROBE)
    state = {"initialised": True}
    fake_torch = types.SimpleNamespace(cuda=types.SimpleNamespace(is_initialized=lambda: state["initialised"]))
    monkeypatch.setitem(sys.modules, "torch", fake_torch)
    with pytest.raises(GpuSlotError, match="already initialised"):
        claim_gpus(1, lock_dir=lock_dir, total=2, timeout=5)
    assert "CUDA_VISIBLE_DEVICES" not in os.environ and not lock_dir.exists()
    state["initialised"] = False
    with monkeypatch.context() as m:  # the driver initialised behind torch's back (torch.cuda.is_available())
        m.setattr(gpu_slots, "_cuda_driver_initialised", lambda: True)
        with pytest.raises(GpuSlotError, match="already initialised"):
            claim_gpus(1, lock_dir=lock_dir, total=2, timeout=5)
    with claim_gpus(1, lock_dir=lock_dir, total=2, timeout=5) as claim:
        assert claim.ids == ("0",)


def test_second_claim_in_one_process_is_refused(lock_dir):
    with claim_gpus(1, lock_dir=lock_dir, total=2, timeout=5):
        with pytest.raises(GpuSlotError, match="already holds GPU"):
            claim_gpus(1, lock_dir=lock_dir, total=2, timeout=1, poll=0.02)
    with claim_gpus(1, lock_dir=lock_dir, total=2, timeout=5) as again:
        assert again.ids == ("0",)


def test_slurm_job_locks_in_its_own_folder(lock_dir, monkeypatch):
    monkeypatch.setenv("OUCR_GPU_LOCK_DIR", str(lock_dir))
    monkeypatch.setenv("OUCR_GPU_SLOTS", "1")
    monkeypatch.setenv("SLURM_JOB_ID", "123")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")  # the job's own first GPU
    assert default_lock_dir() == lock_dir / "slurm-123"
    with claim_gpus(1, timeout=1) as claim:
        assert claim.lock_dir == lock_dir / "slurm-123"
        assert [s.held for s in describe_slots()] == [True]
        monkeypatch.setenv("SLURM_JOB_ID", "456")  # another job on the node: its "GPU 0" is another GPU
        assert describe_slots() == []
    monkeypatch.delenv("SLURM_JOB_ID")
    assert default_lock_dir() == lock_dir
