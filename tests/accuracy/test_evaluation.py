"""Scores, per-layer sensitivity and its override, accuracy_for's cache, and the
``sasim accuracy`` command."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from simulator import api  # noqa: E402
from simulator.accuracy import (accuracy_for, clear_accuracy_cache,  # noqa: E402
                                evaluate_accuracy, per_layer_override, prepare, score)
from simulator.accuracy import evaluation  # noqa: E402
from simulator.errors import SasimError  # noqa: E402


def test_score_by_hand():
    # 3 images, 25 classes; image 0 right, image 1 label 2nd-highest (in top-5), image 2 is
    # ranked 7th (outside top-5)
    logits = torch.zeros(3, 25, dtype=torch.float64)
    logits[0, 4] = 5.0
    logits[1, 0], logits[1, 1] = 3.0, 2.0
    logits[2, 10:17] = torch.arange(7, 0, -1, dtype=torch.float64)
    labels = torch.tensor([4, 1, 16])
    s = score(logits, labels, reference=np.array([4, 1, 10]))
    assert s.correct == 1 and s.top1 == pytest.approx(1 / 3)
    assert s.top5 == pytest.approx(2 / 3)
    assert s.agreement == pytest.approx(2 / 3)  # predictions 4, 0, 10
    expected = -np.mean([np.log(np.exp(5) / (np.exp(5) + 24)),
                         np.log(np.exp(2) / (np.exp(3) + np.exp(2) + 23)),
                         np.log(np.exp(1) / (np.exp(np.arange(1, 8)).sum() + 18))])
    assert s.loss == pytest.approx(expected)
    # below 20 classes top-5 is not reported
    assert score(logits[:, :10], torch.tensor([4, 1, 0])).top5 is None


def test_sensitivity_and_override_on_sysmt(tiny_setup):
    baseline = prepare(tiny_setup)
    arch = api.load_arch("sysmt_4t_16x16", ["pe.layer_threads={pw: 2}"])
    report = evaluate_accuracy(arch, baseline, sensitivity=True, threshold_points=1e-9)
    rows = report["sensitivity"]
    assert [r["layer"] for r in rows] == list(baseline.qmodel.integer_layers())
    images = tiny_setup.evaluation.x.shape[0]
    for row in rows:
        assert row["drop_points"] * images / 100 == pytest.approx(
            round(row["drop_points"] * images / 100))
    suggestion = report["suggestion"]
    losers = [r["layer"] for r in rows if r["drop_points"] > 0]
    assert sorted(suggestion["layers"]) == sorted(losers)
    assert losers  # this model and data have a layer that loses alone (the head)
    override = suggestion["override"]
    assert override["value"]["pw"] == (1 if "pw" in losers else 2)
    assert all(override["value"][name] == 2 for name in losers if name != "pw")
    # the reported accuracy under the override is that of the design with it applied
    value = override["set"].removeprefix("--set '").removesuffix("'")
    applied = evaluate_accuracy(api.load_arch("sysmt_4t_16x16", [value]), baseline)
    assert suggestion["hardware"] == applied["hardware"]
    # the exact dense PE loses nothing anywhere
    dense = evaluate_accuracy(api.load_arch("os_sa_16x16"), baseline, sensitivity=True)
    assert all(r["drop_points"] == 0 and r["agreement"] == 1 for r in dense["sensitivity"])
    assert dense["suggestion"]["layers"] == [] and dense["suggestion"]["override"] is None


def test_per_layer_override_round_trips_through_set():
    arch = api.load_arch("sysmt_4t_16x16", ["pe.layer_threads={a.b: 1}"])
    override = per_layer_override(arch, ["layer2.downsample.0", "stem", "a.b"])
    assert override["changed"] == {"layer2.downsample.0": 2, "stem": 2}
    assert override["value"] == {"a.b": 1, "layer2.downsample.0": 2, "stem": 2}
    value = override["set"].removeprefix("--set '").removesuffix("'")
    assert api.load_arch("sysmt_4t_16x16", [value]).pe.layer_threads == override["value"]
    assert override["yaml"].startswith("pe:\n  layer_threads:\n    a.b: 1\n")
    assert per_layer_override(api.load_arch("sysmt_2t_16x16", ["pe.threads=1"]), ["x"]) is None
    assert per_layer_override(api.load_arch("swis_g8_n3_16x16"), ["stem"]) is None


def test_recalibration_range_and_threshold_errors(tiny_setup):
    baseline = prepare(tiny_setup)
    arch = api.load_arch("sysmt_4t_16x16")
    with pytest.raises(SasimError, match="has 48 .use 2..48"):
        evaluate_accuracy(arch, baseline, recalibrate=49)
    with pytest.raises(SasimError, match="threshold must be a positive"):
        evaluate_accuracy(arch, baseline, sensitivity=True, threshold_points=0)


def test_accuracy_for_caches_per_design_point(tiny_files, monkeypatch):
    clear_accuracy_cache()
    calls = []
    original = evaluation.evaluate_accuracy

    def counting(*args, **kwargs):
        calls.append(args[0].name)
        return original(*args, **kwargs)

    monkeypatch.setattr(evaluation, "evaluate_accuracy", counting)
    model, data = f"{tiny_files / 'net.py'}:factory", str(tiny_files / "data.npz")
    arch = api.load_arch("sysmt_4t_16x16")
    first = accuracy_for(arch, model, data, calibration=data)
    assert set(first) >= {"top1", "int8_top1", "float_top1", "top1_drop_points",
                          "recalibrated_top1"}
    assert first["images"] == 48 and first["recalibrated_top1"] is None
    # another name and memory size: the same arithmetic, a cache hit
    renamed = api.load_arch("sysmt_4t_16x16", ["name=other", "memory.ifmap_kib=64"])
    assert accuracy_for(renamed, model, data, calibration=data) == first
    assert calls == ["sysmt_4t_16x16"]
    two = accuracy_for(api.load_arch("sysmt_2t_16x16"), model, data, calibration=data)
    recal = accuracy_for(arch, model, data, 16, calibration=data)
    assert calls == ["sysmt_4t_16x16", "sysmt_2t_16x16", "sysmt_4t_16x16"]
    assert two["int8_top1"] == first["int8_top1"]
    assert recal["recalibrated_top1"] is not None and recal["recalibration_images"] == 16
    first["top1"] = -1.0  # a copy: the cache is not changed by the caller
    assert accuracy_for(arch, model, data, calibration=data)["top1"] != -1.0
    clear_accuracy_cache()


def test_accuracy_command_on_digits(cli):
    result = cli("accuracy", "--arch", "os_sa_16x16", "--model", "digits", "--limit", "60",
                 "--json")
    assert result.status == 0, result.err
    report = json.loads(result.out)
    assert report["images"] == 60 and report["data"] == "digits:test[:60]"
    assert report["classes"] == 10 and report["hardware"]["top5"] is None
    assert report["hardware"] == report["int8"]  # the dense PE is exact INT8
    assert report["calibration"] == "digits:train[:512]"


def test_accuracy_command_text_with_recalibration(cli, tiny_files):
    data = tiny_files / "data.npz"
    result = cli("accuracy", "--arch", "sysmt_4t_16x16", "--model",
                 f"{tiny_files / 'net.py'}:factory", "--data", data, "--calibration", data,
                 "--bn-recalibrate", "32", "--sensitivity", "--sensitivity-threshold", "100")
    assert result.status == 0, result.err
    for text in ("float32", "INT8 (exporter, exact)", "sysmt_4t_16x16 (sysmt)",
                 "BN recalibration (32 images)", "per-layer sensitivity", "stem",
                 "no layer alone loses 100 top-1 points", "no top-5 with 5 classes"):
        assert text in result.out, text


@pytest.mark.parametrize("extra, message", [
    (["--data", "{d}/missing.npz"], "file not found"),
    (["--data", "{d}/nolabels.npz"], "needs integer labels"),
    (["--data", "{d}/garbage.npz"], "cannot read it"),
    (["--data", "{d}/wrongshape.npz"], "cannot run on the data"),
    (["--data", "{d}/bigl.npz"], "label 9 is out of range for a model with 5 outputs"),
    ([], "needs a labelled evaluation set"),
    (["--data", "{d}/data.npz", "--bn-recalibrate", "1000"], "has 48"),
    (["--data", "{d}/data.npz", "--batch-size", "0"], "batch size must be positive"),
    (["--data", "{d}/data.npz", "--limit", "0"], "--limit must be positive"),
])
def test_accuracy_command_bad_input(cli, tiny_files, extra, message):
    rng = np.random.default_rng(1)
    np.savez(tiny_files / "nolabels.npz", x=rng.normal(size=(4, 2, 6, 6)))
    np.savez(tiny_files / "wrongshape.npz", x=rng.normal(size=(4, 3, 6, 6)), y=np.zeros(4, int))
    np.savez(tiny_files / "bigl.npz", x=rng.normal(size=(4, 2, 6, 6)), y=np.full(4, 9))
    (tiny_files / "garbage.npz").write_bytes(b"not a zip file")
    argv = [a.format(d=tiny_files) for a in extra]
    result = cli("accuracy", "--arch", "sysmt_2t_16x16", "--model",
                 f"{tiny_files / 'net.py'}:factory", "--calibration", tiny_files / "data.npz",
                 *argv)
    assert result.status == 2
    assert message in result.err
    assert result.err.count("\n") == 1 and result.err.startswith("sasim: error:")


def test_accuracy_command_needs_calibration_for_a_model_file(cli, tiny_files):
    result = cli("accuracy", "--arch", "os_sa_16x16", "--model",
                 f"{tiny_files / 'net.py'}:factory", "--data", tiny_files / "data.npz")
    assert result.status == 2 and "needs calibration inputs" in result.err
