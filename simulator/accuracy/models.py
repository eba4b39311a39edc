"""Which network and which images an accuracy run uses.

A model is ``digits`` (the shipped digits ResNet, docs/digits-model.md: its calibration, its
training split for BatchNorm recalibration and its 540 held-out images are the defaults) or
any ``path/to/file.py:factory`` the exporter accepts (``sasim export``), which needs a
labelled evaluation set and calibration inputs. Data sets are named as for the exporter
(:func:`simulator.export.load_dataset`): ``digits:train``, ``digits:test`` or an ``.npz`` file
with a float array ``x`` (the model's inputs, N first) and integer labels ``y`` (N,).
"""

from __future__ import annotations


from torch import nn

from simulator.config.schema import model_name
from simulator.errors import SasimError, shorten
from simulator.export import CalibrationOptions, Dataset, load_dataset, load_factory
from simulator.records import record

__all__ = ["DIGITS", "ModelSetup", "load_setup"]

#: The name of the shipped digits model.
DIGITS = "digits"


@record
class ModelSetup:
    """A float model and the data an accuracy run needs.

    Attributes
    ----------
    name : str
        The model as named by the user (``digits`` or ``file.py:factory``).
    model : nn.Module
        The float model, in eval mode.
    calibration : Dataset
        Inputs the exporter calibrates the activation scales on.
    recalibration : Dataset
        Training inputs for BatchNorm recalibration (the first N are used).
    evaluation : Dataset
        The labelled held-out set.
    options : CalibrationOptions
        The exporter's quantisation options.
    """

    name: str
    model: nn.Module
    calibration: Dataset
    recalibration: Dataset
    evaluation: Dataset
    options: CalibrationOptions


def _labelled(data: Dataset, spec: str) -> Dataset:
    if data.y is None:
        raise SasimError(f"data set {spec}: needs integer labels (an array 'y' beside 'x')")
    if data.x.shape[0] == 0:
        raise SasimError(f"data set {spec}: has no samples")
    if int(data.y.min()) < 0:
        raise SasimError(f"data set {spec}: labels must be non-negative class indices")
    return data


def load_setup(model: str, data: str | None = None, calibration: str | None = None,
               recalibration: str | None = None, *, calibration_samples: int = 512,
               calibration_method: str = "mse", limit: int | None = None) -> ModelSetup:
    """Load a model and its data sets.

    Parameters
    ----------
    model : str
        ``digits`` or ``path/to/file.py:factory``.
    data : str, optional
        The labelled evaluation set (default for ``digits``: ``digits:test``, required
        otherwise).
    calibration : str, optional
        Calibration inputs (default for ``digits``: ``digits:train``, required otherwise);
        the first ``calibration_samples`` are used.
    recalibration : str, optional
        Inputs for BatchNorm recalibration (default: the calibration data set, all of it).
    calibration_samples : int
        Calibration inputs used (512: the shipped digits trace's calibration).
    calibration_method : str
        The exporter's activation clipping (``mse``: the shipped trace's).
    limit : int, optional
        Evaluate on the first ``limit`` images only.

    Raises
    ------
    SasimError
        A missing model or data set, a data set without labels.
    """
    options = CalibrationOptions(method=calibration_method)
    if model == DIGITS:
        from simulator.export.digits import pretrained

        float_model = pretrained()
        data = data or "digits:test"
        calibration = calibration or "digits:train"
    else:
        problem = model_name(model)
        if problem is not None:
            raise SasimError(f"model {shorten(model)}: expected {problem}")
        if data is None:
            raise SasimError(f"model {model}: needs a labelled evaluation set (--data DATA: "
                             f"an .npz file with float inputs 'x' and integer labels 'y')")
        if calibration is None:
            raise SasimError(f"model {model}: needs calibration inputs (--calibration DATA: "
                             f"training inputs for the activation scales)")
        float_model = load_factory(model)
    evaluation = _labelled(load_dataset(data).head(limit), data)
    calibration_set = load_dataset(calibration)
    recalibration_set = (calibration_set if recalibration is None
                         else load_dataset(recalibration))
    return ModelSetup(name=model, model=float_model.eval(),
                      calibration=calibration_set.head(calibration_samples),
                      recalibration=recalibration_set, evaluation=evaluation, options=options)

