"""specc predict: the same answers as torch from an exported file, clear errors, and no torch."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import specc
from specc.cli import main
from specc.errors import EXIT_BAD_SPEC, InputFileError
from specc.runners import predict as predict_runner

from .helpers import trained_weights

FASHION_TEST_IMAGES = Path("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz")
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
MEAN, STD = 0.286, 0.353

SPEC = """network fashion_small
input 1x28x28
conv K=8 F=3 P=1
batchnorm
relu
pool max F=2
conv K=16 F=3 P=1
relu
pool max F=2
flatten
fc 10
"""


def fashion_images(count: int) -> np.ndarray:
    """The first Fashion-MNIST test images where the data set is installed, else made-up 28x28 pictures."""
    if FASHION_TEST_IMAGES.exists():
        with gzip.open(FASHION_TEST_IMAGES) as f:
            pixels = np.frombuffer(f.read(16 + count * 28 * 28), dtype=np.uint8, offset=16)
        return pixels.reshape(count, 28, 28)
    rows, cols = np.mgrid[0:28, 0:28]
    return np.stack([((rows * (i + 1) + cols * 7) * 3 % 256).astype(np.uint8) for i in range(count)])


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> tuple[Path, torch.nn.Module]:
    """An exported classifier with known weights, and the torch module it came from."""
    folder = tmp_path_factory.mktemp("predict")
    spec = folder / "fashion_small.cnn"
    spec.write_text(SPEC)
    net = specc.load(spec)
    extra = {"specc.classes": json.dumps(FASHION_CLASSES), "specc.mean": json.dumps([MEAN]), "specc.std": json.dumps([STD])}
    model = trained_weights(net, folder / "w.safetensors", **extra)
    path = specc.export(net, folder / "fashion.onnx", weights=folder / "w.safetensors").path
    return path, model


def torch_probabilities(model, pixels: np.ndarray) -> np.ndarray:
    x = (torch.tensor(pixels, dtype=torch.float32)[:, None] / 255 - MEAN) / STD
    with torch.no_grad():
        return torch.softmax(model(x), dim=1).numpy()


def cli(*args: str):
    result = CliRunner().invoke(main, ["predict", *map(str, args)])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception  # a bug in specc, not a user mistake
    return result


def test_a_png_gets_the_same_top_class_as_torch(exported, tmp_path: Path):
    model_path, model = exported
    pixels = fashion_images(1)
    Image.fromarray(pixels[0]).save(tmp_path / "item.png")

    result = cli(model_path, tmp_path / "item.png", "--json", "--top", "3")
    assert result.exit_code == 0, result.stderr
    (prediction,) = json.loads(result.stdout)["predictions"]
    want = torch_probabilities(model, pixels)[0]
    assert prediction["top"][0]["class"] == FASHION_CLASSES[int(want.argmax())]
    assert [p["probability"] for p in prediction["top"]] == pytest.approx(sorted(want, reverse=True)[:3], abs=1e-5)


def test_an_npz_gets_the_same_top_classes_as_torch(exported, tmp_path: Path):
    model_path, model = exported
    pixels = fashion_images(6)
    np.savez(tmp_path / "items.npz", x=pixels, y=np.zeros(6, dtype=np.int64))

    result = cli(model_path, "--npz", tmp_path / "items.npz", "--json", "--top", "1")
    assert result.exit_code == 0, result.stderr
    got = [p["top"][0]["class"] for p in json.loads(result.stdout)["predictions"]]
    assert got == [FASHION_CLASSES[i] for i in torch_probabilities(model, pixels).argmax(axis=1)]


def test_the_python_api_takes_arrays_images_and_paths_alike(exported, tmp_path: Path):
    model_path, model = exported
    pixels = fashion_images(2)
    Image.fromarray(pixels[1]).convert("RGB").save(tmp_path / "rgb.png")  # converted to the model's one channel
    predictor = specc.Predictor(model_path, provider="cpu")

    from_array = predictor.predict(pixels[:, None].astype(np.float32) / 255, top=2)
    from_images = predictor.predict([Image.fromarray(pixels[0]), tmp_path / "rgb.png"], top=2)
    assert [[c for c, _ in p.top] for p in from_array] == [[c for c, _ in p.top] for p in from_images]
    np.testing.assert_allclose([[q for _, q in p.top] for p in from_array], [[q for _, q in p.top] for p in from_images], atol=1e-6)
    assert predictor.provider == "CPUExecutionProvider" and predictor.classes == FASHION_CLASSES
    want = torch_probabilities(model, pixels).argmax(axis=1)
    assert [p.top[0][0] for p in from_array] == [FASHION_CLASSES[i] for i in want]


def test_text_output_lists_top_classes_per_image(exported, tmp_path: Path):
    model_path, _ = exported
    Image.fromarray(fashion_images(1)[0]).save(tmp_path / "item.png")
    lines = cli(model_path, tmp_path / "item.png", "--top", "2").stdout.splitlines()
    assert lines[0].endswith("item.png") and len(lines) == 3
    assert lines[1].split()[-1].startswith("0.") and lines[1].strip().split("  ")[0] in FASHION_CLASSES


def test_a_wrong_size_image_is_refused_unless_resized(exported, tmp_path: Path):
    model_path, _ = exported
    Image.fromarray(np.zeros((30, 40), dtype=np.uint8)).save(tmp_path / "big.png")
    refused = cli(model_path, tmp_path / "big.png")
    assert refused.exit_code == EXIT_BAD_SPEC and "Traceback" not in refused.stderr
    assert "30×40 pixels (height×width), but the network takes 28×28" in refused.stderr
    assert "--resize" in refused.stderr
    assert cli(model_path, tmp_path / "big.png", "--resize").exit_code == 0


def test_a_16_bit_png_is_scaled_to_8_bits_not_clipped(exported, tmp_path: Path):
    model_path, _ = exported
    pixels = fashion_images(1)[0]
    Image.fromarray(pixels.astype(np.uint16) * 257).save(tmp_path / "wide.png")  # the same picture in 16 bits
    predictor = specc.Predictor(model_path, provider="cpu")
    assert Image.open(tmp_path / "wide.png").mode.startswith("I")
    np.testing.assert_array_equal(predictor.read_image(tmp_path / "wide.png"), pixels[None])
    (wide,), (narrow,) = predictor.predict(tmp_path / "wide.png"), predictor.predict(Image.fromarray(pixels))
    assert wide.top == narrow.top


def write_corrupt_png(path: Path) -> None:
    Image.fromarray(np.zeros((28, 28), dtype=np.uint8)).save(path)
    path.write_bytes(path.read_bytes()[:40])  # cut off inside the image data


def write_foreign_onnx(path: Path) -> None:
    """A valid ONNX model that specc did not export: it has no metadata."""
    x = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["n", 1, 28, 28])
    y = onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["n", 1, 28, 28])
    graph = onnx.helper.make_graph([onnx.helper.make_node("Identity", ["x"], ["y"])], "foreign", [x], [y])
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 18)], ir_version=10)  # one onnxruntime reads
    onnx.save(model, path)


@pytest.mark.parametrize(
    "case, message",
    [
        ("corrupt image", "is not a readable image"),
        ("not an image", "is not a readable image"),
        ("not onnx", "is not an ONNX model onnxruntime can run"),
        ("foreign onnx", "not one specc exported"),
        ("missing image", "no such image file"),
        ("npz without x", "but no x"),
        ("npz of one number", "items.npz is a single number, not a batch of samples"),
        ("npz of a vector", "items.npz holds a 1-D array of 5 numbers, but fashion_small takes 1×28×28"),
    ],
)
def test_bad_inputs_exit_2_without_a_traceback(exported, tmp_path: Path, case: str, message: str):
    model_path, _ = exported
    image = tmp_path / "item.png"
    Image.fromarray(fashion_images(1)[0]).save(image)
    args = [model_path, image]
    if case == "corrupt image":
        write_corrupt_png(image)
    elif case == "not an image":
        image.write_text("network x\n")
    elif case == "not onnx":
        args[0] = tmp_path / "model.onnx"
        args[0].write_text("this is not a model\n")
    elif case == "foreign onnx":
        args[0] = tmp_path / "model.onnx"
        write_foreign_onnx(args[0])
    elif case == "missing image":
        image.unlink()
    elif case == "npz without x":
        np.savez(tmp_path / "items.npz", images=np.zeros((2, 28, 28), dtype=np.uint8))
        args = [model_path, "--npz", tmp_path / "items.npz"]
    elif case == "npz of one number":
        np.savez(tmp_path / "items.npz", x=np.array(3, dtype=np.uint8))
        args = [model_path, "--npz", tmp_path / "items.npz"]
    elif case == "npz of a vector":
        np.savez(tmp_path / "items.npz", x=np.zeros(5, dtype=np.uint8))
        args = [model_path, "--npz", tmp_path / "items.npz"]
    result = cli(*args)
    assert result.exit_code == EXIT_BAD_SPEC, result.output
    assert message in result.stderr and "Traceback" not in result.stderr


def test_an_image_over_pillows_pixel_limit_exits_2_without_a_traceback(exported, tmp_path: Path, monkeypatch):
    Image.fromarray(fashion_images(1)[0]).save(tmp_path / "item.png")
    # A real decompression bomb would take seconds to write; lowering Pillow's limit takes the same path.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 28x28 is past twice the limit: an error, not a warning
    result = cli(exported[0], tmp_path / "item.png", "--resize")
    assert result.exit_code == EXIT_BAD_SPEC and "Traceback" not in result.stderr
    assert "item.png is too large to read (Image size (784 pixels) exceeds limit" in result.stderr
    assert "shrink it to 28×28 first" in result.stderr


def test_the_python_api_refuses_a_single_number(exported):
    with pytest.raises(InputFileError, match="the array is a single number, not a batch of samples"):
        specc.Predictor(exported[0], provider="cpu").predict(np.array(0.5, dtype=np.float32))


def test_nothing_to_classify_is_a_usage_error(exported):
    result = cli(exported[0])
    assert result.exit_code == EXIT_BAD_SPEC and "nothing to classify" in result.stderr and "Usage:" in result.stderr


def test_predict_does_not_import_torch(exported, tmp_path: Path):
    model_path, model = exported
    pixels = fashion_images(1)
    Image.fromarray(pixels[0]).save(tmp_path / "item.png")
    code = (
        "import sys\n"
        "from specc.cli import main\n"
        f"main(['predict', '--json', {str(model_path)!r}, {str(tmp_path / 'item.png')!r}], standalone_mode=False)\n"
        "assert 'torch' not in sys.modules, 'predict imported torch'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    (prediction,) = json.loads(done.stdout)["predictions"]
    assert prediction["top"][0]["class"] == FASHION_CLASSES[torch_probabilities(model, pixels)[0].argmax()]


def test_auto_provider_tries_cuda_quietly_and_falls_back(exported, capfd, monkeypatch):
    really_has_a_gpu = predict_runner._nvidia_driver()
    # Pretend a driver is present: on a machine without CUDA libraries the CUDA provider fails to start.
    monkeypatch.setattr(predict_runner, "_nvidia_driver", lambda: True)
    predictor = specc.Predictor(exported[0], provider="auto")
    if not really_has_a_gpu:
        assert predictor.provider == "CPUExecutionProvider"
    assert capfd.readouterr().err == ""


# ---- damaged files and hostile metadata: a clear error, names printed as text ----------------------


def with_metadata(source: Path, target: Path, **entries: str) -> Path:
    model = onnx.load(source)
    props = {p.key: p.value for p in model.metadata_props} | {f"specc.{k}": v for k, v in entries.items()}
    onnx.helper.set_model_props(model, props)
    onnx.save(model, target)
    return target


@pytest.mark.parametrize(
    "entries, message",
    [
        ({"input_shape": "5"}, "specc.input_shape must be a list of 1 to 4 sizes"),
        ({"input_shape": "[1, 0, 28]"}, "specc.input_shape must be a list of 1 to 4 sizes"),
        ({"classes": '["a", "b"]'}, "specc.classes must be one name per output of the network (10), but it has 2"),
        ({"classes": '{"a": 1}'}, "specc.classes must be a list of class names"),
        ({"mean": '["x"]'}, "specc.mean must be a list of finite numbers"),
        ({"mean": "[0.1, 0.2]"}, "specc.mean must be one number per input channel (1), but it has 2"),
        ({"std": "[0]"}, "specc.std must be positive numbers"),
        ({"std": "[NaN]"}, "specc.std must be a list of finite numbers"),
        ({"mean": "[[[[["}, "specc.mean is not JSON"),
    ],
)
def test_damaged_metadata_is_named(exported, tmp_path: Path, entries: dict, message: str):
    model = with_metadata(exported[0], tmp_path / "damaged.onnx", **entries)
    np.savez(tmp_path / "items.npz", x=fashion_images(2))
    result = cli(model, "--npz", tmp_path / "items.npz")
    assert result.exit_code == EXIT_BAD_SPEC and message in result.stderr, result.output


def test_an_empty_onnx_file_is_refused(exported, tmp_path: Path):
    (tmp_path / "empty.onnx").write_bytes(b"")
    result = cli(tmp_path / "empty.onnx", "--npz", tmp_path / "none.npz")
    assert result.exit_code == EXIT_BAD_SPEC and "is not an ONNX model onnxruntime can run" in result.stderr


@pytest.mark.parametrize(
    "case, message",
    [
        ("not npy", "x is not an array saved by numpy"),
        ("nan", "holds NaN or infinite values"),
        ("inf", "holds NaN or infinite values"),
    ],
)
def test_damaged_npz_samples_are_refused(exported, tmp_path: Path, case: str, message: str):
    path = tmp_path / "items.npz"
    if case == "not npy":
        import zipfile

        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("x.npy", b"hello, not npy")
    else:
        np.savez(path, x=np.full((2, 1, 28, 28), np.nan if case == "nan" else np.inf, dtype=np.float32))
    result = cli(exported[0], "--npz", path)
    assert result.exit_code == EXIT_BAD_SPEC and message in result.stderr, result.output


def test_longdouble_samples_are_read(exported, tmp_path: Path):
    pixels = fashion_images(2)
    np.savez(tmp_path / "items.npz", x=(pixels / 255).astype(np.longdouble))
    np.savez(tmp_path / "same.npz", x=pixels)
    assert (
        cli(exported[0], "--npz", tmp_path / "items.npz").stdout.replace("items", "same")
        == cli(exported[0], "--npz", tmp_path / "same.npz").stdout
    )


def test_class_names_reach_the_terminal_as_text(exported, tmp_path: Path):
    names = ["\x1b[2Jclear", "[/x]", "[dog]", *FASHION_CLASSES[3:]]
    model = with_metadata(exported[0], tmp_path / "names.onnx", classes=json.dumps(names))
    np.savez(tmp_path / "items.npz", x=fashion_images(3))
    result = cli(model, "--npz", tmp_path / "items.npz", "--top", "10")
    assert result.exit_code == 0 and "\x1b" not in result.stdout
    assert "\\x1b[2Jclear" in result.stdout and "[/x]" in result.stdout and "[dog]" in result.stdout
