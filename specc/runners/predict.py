"""Classify images or arrays with an exported ONNX file: onnxruntime and numpy, no torch.

Everything needed besides the pixels comes from the metadata that `specc
export` wrote into the file: the input shape, the per-channel mean and
standard deviation the network was trained with, the class names, the task
(how to read the output: readings.py), and whether the output is already
probabilities.

Samples are prepared as in training: uint8 pixels are scaled by 1/255, floats
are taken as they are, then each channel is normalised with the stored mean
and standard deviation. Images must have the network's input size; `resize`
stretches them to it instead, because a silent stretch can distort what the
network sees.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import sys
import zipfile
from pathlib import Path

import numpy as np

from ..errors import InputFileError, UsageError
from ..shapes import shape_text
from .images import image_pixels
from .readings import Prediction, probabilities, read

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
PROVIDERS = ("auto", "cpu", "cuda")
_REQUIRED = ("specc.input_shape", "specc.classes", "specc.mean", "specc.std", "specc.output")
_IMAGE_MODES = {1: "L", 3: "RGB"}  # input channels -> Pillow mode
BATCH = 64  # samples per onnxruntime call


class Predictor:
    """An exported network, ready to classify: `Predictor("net.onnx").predict(["cat.png"], top=3)`."""

    def __init__(self, path: str | Path, provider: str = "auto"):
        self.path = Path(path)
        self.session = _session(self.path, provider)
        meta = self.session.get_modelmeta().custom_metadata_map
        missing = [key for key in _REQUIRED if key not in meta]
        if missing:
            raise InputFileError(
                f"{self.path} is an ONNX model, but not one specc exported: it has no {', '.join(missing)} metadata",
                hint="export it with `specc export SPEC -o FILE.onnx`; predict needs the input normalisation and class names",
            )
        from .metadata import read_metadata

        self.network = meta.get("specc.network", self.path.stem)
        self.task = meta.get("specc.task", "classes")  # files from before tasks were classifiers
        shape = self.session.get_outputs()[0].shape[1:]
        self.output_shape = tuple(shape) if all(isinstance(d, int) for d in shape) else None
        values = read_metadata(meta, str(self.path), self.output_shape)
        self.input_shape = tuple(values["input_shape"])
        self.classes = values["classes"]
        self.mean = np.asarray(values["mean"], dtype=np.float32)
        self.std = np.asarray(values["std"], dtype=np.float32)
        self.output = meta["specc.output"]  # probabilities, logits or values
        if not self.classes and self.task in ("classes", "binary", "multilabel"):
            raise InputFileError(f"{self.path}: {self.network} does not end in one score per class, so it cannot classify")

    @property
    def provider(self) -> str:
        return self.session.get_providers()[0]

    def predict(self, samples, top: int = 3, resize: bool = False) -> list[Prediction]:
        """A prediction for each sample, as the task reads the output: image paths or PIL images (a list of them), or an N x ... array.

        classes: the `top` classes; binary: the positive class's probability; multilabel: each label's;
        regression: the values; segmentation: the class mask, and its pixels per class.
        """
        if isinstance(samples, np.ndarray):
            scores = self.outputs(samples)
            return read(self.task, self.output, scores, self.classes, [f"sample {i}" for i in range(len(scores))], top)
        items = samples if isinstance(samples, list | tuple) else [samples]
        if not items:
            return []
        batch = np.stack([self.read_image(item, resize) for item in items])
        return read(self.task, self.output, self.outputs(batch), self.classes, [_label(item) for item in items], top)

    def predict_npz(self, path: str | Path, top: int = 3) -> list[Prediction]:
        path = Path(path)
        scores = self.outputs(read_npz(path), str(path))
        return read(self.task, self.output, scores, self.classes, [f"{path}[{i}]" for i in range(len(scores))], top)

    def probabilities(self, x: np.ndarray, where: str = "the array") -> np.ndarray:
        """N x classes probabilities for N raw samples: softmax over classes, sigmoid per yes/no output (where the graph lacks it)."""
        if self.task == "regression":
            raise UsageError(f"{self.network} regresses values: it has no probabilities", hint="use outputs() for its values")
        return probabilities(self.task, self.output, self.outputs(x, where))

    def outputs(self, x: np.ndarray, where: str = "the array") -> np.ndarray:
        """The network's outputs (N x ...) for N raw samples (uint8 pixels, or floats as in training), as the graph gives them."""
        if x.ndim == 0:
            raise InputFileError(
                f"{where} is a single number, not a batch of samples", hint=f"pass an N x {shape_text(self.input_shape)} array"
            )
        if len(x) == 0:
            return np.zeros((0, *(self.output_shape or (len(self.classes),))), dtype=np.float32)
        name = self.session.get_inputs()[0].name
        # In slices: a whole test set at 224x224 would take gigabytes as float32.
        return np.concatenate([self.session.run(None, {name: self._prepare(part, where)})[0] for part in _slices(x, BATCH)])

    def read_image(self, image, resize: bool = False) -> np.ndarray:
        """One image file or PIL image as uint8 C x H x W, in the network's channels and size."""
        from PIL import Image

        channels, height, width = self._image_shape()
        if not isinstance(image, Image.Image):
            return self._read_image_file(Path(image), resize)
        if image.size != (width, height):
            if not resize:
                raise InputFileError(
                    f"{_label(image)} is {shape_text((image.height, image.width))} pixels (height×width), "
                    f"but the network takes {shape_text((height, width))}",
                    hint=f"pass --resize (in Python, resize=True) to stretch it to {shape_text((height, width))}, or crop it yourself",
                )
            image = image.resize((width, height), Image.Resampling.BILINEAR)
        pixels = image_pixels(image, _IMAGE_MODES[channels])
        return pixels[None] if channels == 1 else pixels.transpose(2, 0, 1)

    def _read_image_file(self, path: Path, resize: bool) -> np.ndarray:
        from PIL import Image, UnidentifiedImageError

        if not path.is_file():
            raise InputFileError(f"no such image file: {path}")
        try:
            with Image.open(path) as image:
                image.load()  # a truncated file fails here, not later
                return self.read_image(image, resize)
        except Image.DecompressionBombError as err:  # Pillow refuses to decode so many pixels, for fear of running out of memory
            _, height, width = self._image_shape()
            raise InputFileError(
                f"{path} is too large to read ({err})",
                hint=f"shrink it to {shape_text((height, width))} first: --resize cannot help, as the image is refused before it is read",
            ) from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
            raise InputFileError(f"{path} is not a readable image ({err})", hint="specc predict reads PNG and JPEG files") from None

    def _image_shape(self) -> tuple[int, int, int]:
        if len(self.input_shape) != 3 or self.input_shape[0] not in _IMAGE_MODES:
            raise UsageError(
                f"{self.network} takes {shape_text(self.input_shape)} inputs, not 1- or 3-channel images",
                hint="pass the samples as an array with --npz",
            )
        return self.input_shape

    def _prepare(self, x: np.ndarray, where: str) -> np.ndarray:
        if x.dtype == np.uint8:
            x = x.astype(np.float32) / 255
        elif x.dtype.kind == "f":
            x = x.astype(np.float32)
            if not np.isfinite(x).all():  # the network would answer nan for every class
                raise InputFileError(f"{where} holds NaN or infinite values", hint="replace or drop the damaged samples")
        else:
            raise InputFileError(f"{where} holds {x.dtype} values, but must be uint8 (scaled by 1/255) or float")
        if x.ndim == len(self.input_shape) and self.input_shape[0] == 1:
            x = x[:, None]  # N x H x W: the one channel is implied, as in training
        if x.shape[1:] != self.input_shape:
            # A 1-D array has samples of no shape at all, which would read as "samples of , but ...".
            found = f"samples of {shape_text(x.shape[1:])}" if x.ndim > 1 else f"a 1-D array of {len(x)} numbers"
            raise InputFileError(
                f"{where} holds {found}, but {self.network} takes {shape_text(self.input_shape)}",
                hint=f"pass a batch: an N x {shape_text(self.input_shape)} array",
            )
        spatial = (1,) * (len(self.input_shape) - 1)
        return (x - self.mean.reshape(-1, *spatial)) / self.std.reshape(-1, *spatial)


def read_npz(path: Path) -> np.ndarray:
    """The samples `x` of an .npz file, as training reads them (labels, if any, are ignored)."""
    hint = "save it with np.savez(path, x=samples); x is N x C x H x W, or N x H x W for one channel"
    if not path.is_file():
        raise InputFileError(f"no such .npz file: {path}")
    if not zipfile.is_zipfile(path):  # np.load would read anything else as one array, or try pickle
        raise InputFileError(f"{path} is not an .npz archive", hint=hint)
    try:
        with np.load(path, allow_pickle=False) as arrays:
            if "x" not in arrays.files:
                raise InputFileError(f"{path} has arrays {sorted(arrays.files) or 'none'}, but no x", hint=hint)
            x = arrays["x"]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise InputFileError(f"{path} is not a readable .npz file ({err})", hint=hint) from None
    if not isinstance(x, np.ndarray):  # np.load gives a member that is not .npy data as bytes
        raise InputFileError(f"{path}: x is not an array saved by numpy (not .npy data)", hint=hint)
    return x


# --- onnxruntime sessions ------------------------------------------------------


def _session(path: Path, provider: str):
    import onnxruntime as ort
    from onnxruntime.capi.onnxruntime_pybind11_state import Fail, InvalidArgument, InvalidGraph, InvalidProtobuf, NoModel
    from onnxruntime.capi.onnxruntime_pybind11_state import NotImplemented as Unsupported

    if provider not in PROVIDERS:
        raise UsageError(f"unknown provider {provider!r}", hint=f"choose one of {', '.join(PROVIDERS)}")
    if not path.is_file():
        raise InputFileError(f"no such model file: {path}", hint="`specc export` writes one")
    try:
        return _start(ort, path, provider)
    except (InvalidProtobuf, InvalidGraph, InvalidArgument, NoModel, Fail, Unsupported) as err:  # InvalidArgument: an empty file
        raise InputFileError(f"{path} is not an ONNX model onnxruntime can run: {_reason(err)}", hint="`specc export` writes one") from None


def _start(ort, path: Path, provider: str):
    """A session on the chosen provider; `auto` takes CUDA only where it really starts, and says nothing if not."""
    has_cuda = CUDA in ort.get_available_providers()
    if provider == "cpu" or (provider == "auto" and not (has_cuda and _nvidia_driver())):
        return ort.InferenceSession(str(path), providers=[CPU])
    if provider == "auto":
        # A failed CUDA start prints a page of errors: try it silently, and take what loads.
        with _onnxruntime_silenced(ort):
            return _cuda_session(ort, path, output=io.StringIO())
    if not has_cuda:
        raise UsageError("this onnxruntime build has no CUDA provider", hint="install onnxruntime-gpu (and only it: uninstall onnxruntime)")
    session = _cuda_session(ort, path, output=sys.stderr)
    if session.get_providers()[0] != CUDA:
        raise UsageError("onnxruntime could not start its CUDA provider (its message above says why)", hint="use --provider cpu")
    return session


def _cuda_session(ort, path: Path, output):
    # onnxruntime-gpu[cuda,cudnn] brings CUDA as pip packages, which torch would load
    # on import; predict has no torch, so ask onnxruntime to load them (it prints as it goes).
    if hasattr(ort, "preload_dlls"):
        with contextlib.redirect_stdout(output):
            ort.preload_dlls()
    return ort.InferenceSession(str(path), providers=[CUDA, CPU])


def _nvidia_driver() -> bool:
    """True if the NVIDIA driver library loads: without it, CUDA cannot start and need not be tried."""
    name = "nvcuda.dll" if sys.platform == "win32" else "libcuda.so.1"
    try:
        ctypes.CDLL(name)
    except OSError:
        return False
    return True


@contextlib.contextmanager
def _onnxruntime_silenced(ort):
    ort.set_default_logger_severity(4)  # fatal only
    try:
        yield
    finally:
        ort.set_default_logger_severity(2)  # onnxruntime's default: warnings and up


# --- small helpers ------------------------------------------------------------------


def _label(item) -> str:
    return str(item) if isinstance(item, str | Path) else getattr(item, "filename", "") or "the image"


def _slices(x: np.ndarray, size: int):
    return (x[start : start + size] for start in range(0, len(x), size))


def _reason(err: Exception) -> str:
    """onnxruntime's message without its preamble: '[ONNXRuntimeError] : 7 : ... Load model from X failed:<reason>'."""
    reason = str(err).split("failed:", 1)[-1].strip()
    if reason.startswith("/"):  # a C++ source location and signature come first: 'model.cc:256 Model::Model(...) <reason>'
        reason = reason.rsplit(") ", 1)[-1]
    return reason or type(err).__name__
