"""BatchNorm recalibration with the PE in the loop (docs/accuracy.md)."""

from __future__ import annotations

import copy

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

from simulator import api  # noqa: E402
from simulator.accuracy import (prepare, recalibrate_batchnorm,  # noqa: E402
                                recalibrated_model)
from simulator.errors import SasimError  # noqa: E402
from simulator.export import quantize  # noqa: E402
from simulator.hw.pe import get_pe_model  # noqa: E402


def _pe(spec: str):
    arch = api.load_arch(spec)
    return get_pe_model(arch.pe, arch.array)


def _norms(model):
    return {name: m for name, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)}


def test_first_batchnorm_sees_the_unfolded_hardware_conv(tiny_setup):
    # One batch through the dense PE: stem_bn's new statistics are the mean and unbiased
    # variance of s_a * s_w * (W_int conv x_q) / phi, computed here from the definitions.
    model, x = tiny_setup.model, tiny_setup.evaluation.x
    baseline = prepare(tiny_setup)
    stem = baseline.qmodel.integer_layers()["stem"]
    original = {k: v.clone() for k, v in model.state_dict().items()}
    new = recalibrate_batchnorm(model, baseline.qmodel, _pe("os_sa_16x16"), x,
                                batch_size=x.shape[0])
    bn = model.stem_bn
    phi = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
    acc = F.conv2d(stem.quantize_input(x), stem.weight_int, None, 1, 1)
    raw = acc * (stem.activation_scale * stem.weight_scales / phi).reshape(1, -1, 1, 1)
    raw = raw.float()
    torch.testing.assert_close(new.stem_bn.running_mean, raw.mean(dim=(0, 2, 3)),
                               rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(new.stem_bn.running_var, raw.var(dim=(0, 2, 3)),
                               rtol=1e-5, atol=1e-6)
    # ... which is the float conv's output up to INT8 rounding
    with torch.no_grad():
        exact = model.stem(x)
    torch.testing.assert_close(raw, exact, rtol=0, atol=0.05)
    assert int(new.stem_bn.num_batches_tracked) == 1
    # the original model is untouched
    assert all(torch.equal(v, original[k]) for k, v in model.state_dict().items())
    assert not torch.equal(new.stem_bn.running_mean, model.stem_bn.running_mean)


def test_recalibration_restores_corrupted_statistics(tiny_setup):
    # Twin: ordinary float BN recalibration (train-mode BatchNorms, cumulative average) of
    # the uncorrupted model. Recalibration through the exact PE of a model whose statistics
    # were corrupted must land near the twin's statistics, much nearer than the corruption.
    x = tiny_setup.evaluation.x
    twin = copy.deepcopy(tiny_setup.model)
    for bn in _norms(twin).values():
        bn.reset_running_stats()
        bn.momentum = None
        bn.train()
    with torch.no_grad():
        for batch in torch.tensor_split(x, 3):
            twin(batch)
    corrupted = copy.deepcopy(tiny_setup.model)
    generator = torch.Generator().manual_seed(5)
    for bn in _norms(corrupted).values():
        bn.running_mean.add_(0.3 * torch.randn(bn.num_features, generator=generator))
        bn.running_var.mul_(1.5)
    qmodel = quantize(corrupted, tiny_setup.calibration.x, tiny_setup.options)
    new = recalibrate_batchnorm(corrupted, qmodel, _pe("os_sa_16x16"), x, batch_size=16)
    for name, bn in _norms(twin).items():
        for stat in ("running_mean", "running_var"):
            target = getattr(bn, stat)
            before = (getattr(_norms(corrupted)[name], stat) - target).abs().max()
            after = (getattr(_norms(new)[name], stat) - target).abs().max()
            assert after < 0.2 * before, (name, stat, float(before), float(after))
        assert int(_norms(new)[name].num_batches_tracked) == 3


def test_the_pe_is_in_the_loop(tiny_setup):
    model, x = tiny_setup.model, tiny_setup.evaluation.x
    baseline = prepare(tiny_setup)
    exact = recalibrate_batchnorm(model, baseline.qmodel, _pe("os_sa_16x16"), x)
    approx = recalibrate_batchnorm(model, baseline.qmodel, _pe("sysmt_4t_16x16"), x)
    assert not torch.equal(exact.res_bn.running_var, approx.res_bn.running_var)


def test_requantisation_keeps_weights_and_activation_scales(tiny_setup):
    model, x = tiny_setup.model, tiny_setup.evaluation.x
    baseline = prepare(tiny_setup)
    pe = _pe("sysmt_4t_16x16")
    kept = recalibrated_model(model, baseline.qmodel, pe, x, tiny_setup.calibration.x)
    before, after = baseline.qmodel.integer_layers(), kept.integer_layers()
    assert list(after) == list(before)
    changed_bias = False
    for name in before:
        # per-channel symmetric quantisation: the fold factor cancels in the integer weights
        assert torch.equal(after[name].weight_int, before[name].weight_int), name
        assert after[name].activation_scale == before[name].activation_scale
        assert after[name].signed == before[name].signed
        if before[name].bias_int is not None:
            changed_bias |= not torch.equal(after[name].bias_int, before[name].bias_int)
    assert changed_bias
    again = recalibrated_model(model, baseline.qmodel, pe, x, tiny_setup.calibration.x,
                               activation_scales="recalibrate")
    expected = quantize(recalibrate_batchnorm(model, baseline.qmodel, pe, x),
                        tiny_setup.calibration.x, tiny_setup.options).integer_layers()
    assert {n: m.activation_scale for n, m in again.integer_layers().items()} == \
        {n: m.activation_scale for n, m in expected.items()}
    assert any(again.integer_layers()[n].activation_scale != before[n].activation_scale
               for n in before)


def test_recalibration_errors(tiny_setup):
    model, x = tiny_setup.model, tiny_setup.evaluation.x
    baseline = prepare(tiny_setup)
    pe = _pe("os_sa_16x16")
    with pytest.raises(SasimError, match="at least 2 images"):
        recalibrate_batchnorm(model, baseline.qmodel, pe, x[:1])
    with pytest.raises(SasimError, match="batch size must be at least 2"):
        recalibrate_batchnorm(model, baseline.qmodel, pe, x, batch_size=1)
    with pytest.raises(SasimError, match="keep or recalibrate"):
        recalibrated_model(model, baseline.qmodel, pe, x, x, activation_scales="both")
    plain = nn.Sequential(nn.Conv2d(2, 3, 3), nn.Flatten(), nn.Linear(48, 4)).eval()
    qplain = quantize(plain, x)
    with pytest.raises(SasimError, match="no BatchNorm"):
        recalibrate_batchnorm(plain, qplain, pe, x)
