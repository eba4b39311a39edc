"""The cache of synthetic tensors (simulator/workloads/data_cache.py, docs/synthetic-data.md,
"The cache"): what it gives back equals what the generator draws, bit for bit; a bad file is
drawn again; a folder it cannot write, or ``off``, changes nothing but speed."""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest

from simulator import api
from simulator.workloads import data_cache
from simulator.workloads.synthetic import SyntheticOptions, synthesize


def _layers():
    """Conv and linear layers of ResNet-18, and a transformer's matmul and vector layers."""
    cnn = api.load_workload("resnet18")
    gpt = api.load_workload("gpt2_decode")
    picked = [cnn.layers[0], cnn.layers[5], cnn.layers[-1]]
    picked += [next(layer for layer in gpt.layers if layer.op == op)
               for op in ("matmul", "softmax", "add", "linear")]
    return dataclasses.replace(cnn, layers=tuple(dataclasses.replace(layer, name=f"l{i}")
                                                 for i, layer in enumerate(picked)))


def _all(workload):
    return [workload.tensors(layer.name) for layer in workload.layers]


def _equal(got, want):
    for name in ("input", "weight", "other", "bias", "output"):
        a, b = getattr(got, name), getattr(want, name)
        assert (a is None) == (b is None), name
        if a is not None:
            assert a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b), name
            assert a.flags.writeable and a.flags.aligned and a.flags.c_contiguous, name


def _files(folder):
    return sorted(p for p in folder.rglob("*.tensors"))


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.setenv("SASIM_DATA_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_cached_tensors_equal_the_drawn_ones(folder, monkeypatch):
    workload = synthesize(_layers())
    first = _all(workload)  # drawn and kept
    assert len(_files(folder)) == len(workload.layers)
    again = _all(workload)  # read back
    monkeypatch.setenv("SASIM_DATA_CACHE", "off")
    drawn = _all(workload)
    for got, cached, want in zip(first, again, drawn):
        _equal(got, want)
        _equal(cached, want)


def test_the_key_follows_the_options_and_the_layer(folder):
    workload = _layers()
    _all(synthesize(workload))
    _all(synthesize(workload, SyntheticOptions(seed=1)))
    assert len(_files(folder)) == 2 * len(workload.layers)
    layer = workload.layers[1]
    assert data_cache.key(layer, 1, SyntheticOptions()) != data_cache.key(
        dataclasses.replace(layer, activation_bits=4), 1, SyntheticOptions())
    assert data_cache.key(layer, 1, SyntheticOptions()) != data_cache.key(
        layer, 2, SyntheticOptions())


@pytest.mark.parametrize("damage", ["truncate", "garbage", "other key", "empty"])
def test_a_bad_file_is_drawn_again_and_replaced(folder, monkeypatch, damage):
    workload = synthesize(_layers())
    want = _all(workload)
    files = _files(folder)
    other = files[1].read_bytes()
    for path in files:
        data = path.read_bytes()
        path.write_bytes({"truncate": data[:len(data) // 2], "garbage": os.urandom(200),
                          "other key": other, "empty": b""}[damage])
    for got, expected in zip(_all(workload), want):
        _equal(got, expected)
    for got, expected in zip(_all(workload), want):  # the files were written anew
        _equal(got, expected)
    assert [p.read_bytes() for p in _files(folder)] != [b""] * len(files)


def test_a_folder_it_cannot_write_changes_nothing(tmp_path, monkeypatch):
    blocker = tmp_path / "a file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("SASIM_DATA_CACHE", str(blocker / "cache"))
    workload = synthesize(_layers())
    monkeypatch.setenv("SASIM_DATA_CACHE", "off")
    want = _all(workload)
    monkeypatch.setenv("SASIM_DATA_CACHE", str(blocker / "cache"))
    for got, expected in zip(_all(workload), want):
        _equal(got, expected)
    assert blocker.read_text() == "not a folder"


def test_off_keeps_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("SASIM_DATA_CACHE", "off")
    monkeypatch.setenv("HOME", str(tmp_path))
    _all(synthesize(_layers()))
    assert not list(tmp_path.rglob("*.tensors"))


def test_the_least_recently_used_go_first(folder, monkeypatch):
    resnet = api.load_workload("resnet18")
    workload = synthesize(resnet)
    for layer in resnet.layers[:12]:
        workload.tensors(layer.name)
    files = _files(folder)
    assert len(files) == 12 and sum(p.stat().st_size for p in files) > 2 << 20
    monkeypatch.setenv("SASIM_DATA_CACHE_MB", "2")
    for age, path in enumerate(files):  # files[0] the least recently used
        os.utime(path, (1_000_000 + age, 1_000_000 + age))
    # a new file (another seed; small enough to keep): over the limit, the oldest go
    synthesize(resnet, SyntheticOptions(seed=1)).tensors(resnet.layers[0].name)
    left = _files(folder)
    assert sum(p.stat().st_size for p in left) <= 2 << 20
    kept = [i for i, path in enumerate(files) if path in left]
    assert len(left) == len(kept) + 1 and 0 not in kept
    assert kept == list(range(12 - len(kept), 12))


def test_a_run_reads_what_an_earlier_run_kept(folder, cli):
    args = ("run", "--arch", "sysmt_4t_16x16", "--workload", "resnet18", "--json",
            "--set", "memory=ideal")
    first = cli(*args)
    assert first.status == 0, first.err
    kept = {p: p.stat().st_mtime_ns for p in _files(folder)}
    assert len(kept) == 21
    second = cli(*args)
    assert second.out == first.out
    assert {p: p.stat().st_mtime_ns for p in _files(folder)}.keys() == kept.keys()


def test_a_killed_writers_temporary_goes(folder):
    from simulator.outputs import TEMP_PREFIX

    workload = _layers()
    layer = workload.layers[0]
    sub = folder / data_cache.key(layer, 0, SyntheticOptions())[:2]
    sub.mkdir(parents=True)
    dead = sub / f"{TEMP_PREFIX}999999999.0000.x.tensors"  # its writer no longer runs
    dead.write_bytes(b"half")
    synthesize(workload).tensors(layer.name)  # written into that folder
    assert not dead.exists()
    assert len(_files(folder)) == 1


def test_without_the_generators_source_nothing_is_kept(folder, monkeypatch):
    monkeypatch.setattr(data_cache, "_generator_digest", lambda: None)
    workload = synthesize(_layers())
    monkeypatch.setenv("SASIM_DATA_CACHE", "off")
    want = _all(workload)
    monkeypatch.setenv("SASIM_DATA_CACHE", str(folder))
    for got, expected in zip(_all(workload), want):
        _equal(got, expected)
    assert not _files(folder)
