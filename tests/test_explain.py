"""`specc explain`: occlusion, filters and feature maps checked against hand-built networks and hand computations.

The network of most tests is built by hand: one 3x3 averaging conv with a bias
of -0.5, so that only a bright patch survives the relu, then a global average
and an fc that says "patch" for any survivor. Its answer is decided by the patch
alone, so occlusion must find the patch, wherever it is.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F  # noqa: N812

import specc
from specc.errors import SpeccError
from specc.explain import Explainer, Sample, Settings, explain, pictures
from specc.runners.checkpoint import save_atomic

from .helpers import invoke

PATCH_NET = """\
network patch
input 1x12x12
conv K=1 F=3 P=1
relu
pool avg global
flatten
fc 2
softmax
"""
BACKGROUND = 0.1  # the image's dark pixels, and the mean the occluding square is filled with


def patch_explainer() -> Explainer:
    net = specc.loads(PATCH_NET)
    module = net.to_torch()
    with torch.no_grad():
        module.conv1.weight.fill_(1 / 9)
        module.conv1.bias.fill_(-0.5)
        module.fc1.weight.copy_(torch.tensor([[0.0], [2000.0]]))
        module.fc1.bias.copy_(torch.tensor([0.0, -4.0]))
    from specc.runners.losses import logits_model

    return Explainer(net, logits_model(net.network, module), ["plain", "patch"], [BACKGROUND], [1.0])


def image_with_patch(row: int, col: int) -> torch.Tensor:
    x = torch.full((1, 12, 12), BACKGROUND)
    x[0, row : row + 3, col : col + 3] = 1.0
    return x


@pytest.fixture(scope="module")
def explainer() -> Explainer:
    return patch_explainer()


@pytest.mark.parametrize("row, col", [(2, 2), (7, 8), (0, 9)])
def test_occlusion_is_lowest_on_the_patch(explainer, row, col):
    x = image_with_patch(row, col)
    occluded = explainer.occlusion(x, target=1, window=3, stride=1)
    assert occluded.unoccluded > 0.9  # the network sees the patch
    heat = occluded.probability
    lowest = divmod(int(heat.argmin()), 12)
    assert row <= lowest[0] < row + 3 and col <= lowest[1] < col + 3, (lowest, (row, col))
    assert heat.min() < 0.1  # greyed out, the patch is gone and with it the class
    far = heat[(row + 6) % 12, (col + 6) % 12]
    assert far == pytest.approx(occluded.unoccluded, abs=1e-4)  # away from the patch nothing changes


def test_saliency_and_grad_cam_are_maps_of_the_image(explainer):
    x = image_with_patch(5, 5)
    saliency = explainer.saliency(x, 1)
    layer, cam = explainer.grad_cam(x, 1)
    assert saliency.shape == cam.shape == (12, 12) and layer == "relu1"
    assert float(saliency.sum()) > 0 and float(cam.max()) > 0
    # Grad-CAM of a map that is zero away from the patch is zero there too
    assert cam[0, 0] == 0 and cam[6, 6] > 0


def test_feature_maps_are_the_activations_computed_by_hand(explainer):
    x = image_with_patch(3, 4)
    layers = explainer.feature_layers()
    assert [layer.name for layer in layers] == ["relu1"]  # the conv's activation, not the conv
    maps = explainer.feature_maps(x, layers)["relu1"]
    conv = explainer.module.conv1
    by_hand = torch.relu(F.conv2d((x[None] - BACKGROUND) / 1.0, conv.weight, conv.bias, padding=1))[0].detach()
    torch.testing.assert_close(maps, by_hand)
    grid = pictures.feature_grid(maps, "relu1", x, "sample")
    assert np.allclose(grid.axes[1].images[0].get_array()[:12, :12], by_hand[0].numpy())
    several = torch.rand(5, 3, 4)  # tiled three to a row, a blank line between neighbours
    tiles, columns = pictures.mosaic(several)
    assert columns == 3 and tiles.shape == (2 * 4 - 1, 3 * 5 - 1)
    assert np.array_equal(tiles[4:7, 5:9], several[4].numpy()) and np.isnan(tiles[3]).all() and np.isnan(tiles[4:, 10:]).all()


def test_feature_layers_pass_a_batchnorm_and_a_wrong_name_gets_a_suggestion():
    from .helpers import TINY

    net = specc.loads(TINY)
    module = net.to_torch()
    tiny = Explainer(net, module, ["a", "b", "c"], [0.5], [0.25])
    assert [layer.name for layer in tiny.feature_layers()] == ["relu1"]
    assert [layer.name for layer in tiny.feature_layers("pool1")] == ["pool1"]
    with pytest.raises(SpeccError) as err:
        tiny.feature_layers("relu")
    assert "no layer named 'relu'" in err.value.render() and "did you mean 'relu1'?" in err.value.render()
    with pytest.raises(SpeccError, match="not C×H×W maps"):
        tiny.feature_layers("fc1")


def test_the_filter_grid_shows_the_weights_that_were_set():
    weights = torch.arange(4 * 9, dtype=torch.float32).reshape(4, 1, 3, 3) - 17
    figure = pictures.filter_grid(weights, "conv1")
    shown = [ax.images[0] for ax in figure.axes if ax.images]
    assert len(shown) == 4
    for image, w in zip(shown, weights, strict=True):
        assert np.array_equal(image.get_array(), w[0].numpy())
        assert image.get_clim() == (-18.0, 18.0)  # one scale for all, zero in the middle
    rgb = torch.randn(2, 3, 5, 5)
    figure = pictures.filter_grid(rgb, "stem")
    for ax, w in zip([ax for ax in figure.axes if ax.images], rgb, strict=True):
        stretched = (w - w.min()) / (w.max() - w.min())
        assert np.allclose(ax.images[0].get_array(), stretched.permute(1, 2, 0).numpy(), atol=1e-6)


def test_explain_writes_every_picture(tmp_path, explainer):
    samples = [Sample("left", image_with_patch(1, 1), 1), Sample("empty", torch.full((1, 12, 12), BACKGROUND), None)]
    written = explain(explainer, samples, tmp_path, Settings(window=4, stride=2, top=2))
    names = sorted(p.name for p in written)
    assert names == sorted(["filters.png"] + [f"{s}-{p}.png" for s in ("left", "empty") for p in ("top", "attribution", "features-relu1")])
    assert all(p.stat().st_size > 1000 for p in written)


def test_a_window_larger_than_the_image(explainer):
    with pytest.raises(SpeccError, match=r"occlusion window \(13×13\) is larger than the image \(12×12\)"):
        explainer.occlusion(image_with_patch(0, 0), 1, window=13, stride=1)


# ---- the command line: files, and named errors -------------------------------------------------


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """The patch network as a spec and a weights file with specc's metadata."""
    folder = tmp_path_factory.mktemp("patch")
    (folder / "patch.cnn").write_text(PATCH_NET)
    meta = {"specc.classes": '["plain", "patch"]', "specc.mean": f"[{BACKGROUND}]", "specc.std": "[1.0]"}
    save_atomic(folder / "patch.safetensors", patch_explainer().module.state_dict(), meta)
    from PIL import Image

    Image.fromarray((image_with_patch(4, 6)[0].numpy() * 255).astype(np.uint8)).save(folder / "patch.png")
    Image.fromarray(np.zeros((10, 12), dtype=np.uint8)).save(folder / "small.png")
    x = np.stack([image_with_patch(0, 0)[0].numpy(), image_with_patch(9, 9)[0].numpy()])
    np.savez(folder / "two.npz", x=x.astype(np.float32), y=np.array([1, 1]))
    return folder


def test_cli_explains_images_and_npz(saved, tmp_path):
    spec, weights = str(saved / "patch.cnn"), str(saved / "patch.safetensors")
    result = invoke("explain", spec, "--weights", weights, str(saved / "patch.png"), "--window", "3", "-o", str(tmp_path / "a"))
    assert result.exit_code == 0, result.output
    assert "wrote 4 pictures of 1 sample" in result.output and (tmp_path / "a" / "patch-attribution.png").is_file()
    result = invoke("explain", spec, "--weights", weights, "--npz", str(saved / "two.npz"), "--layer", "conv1", "-o", str(tmp_path / "b"))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "b" / "two_1-features-conv1.png").is_file()


@pytest.mark.parametrize(
    "args, message, code",
    [  # 2: a file the user named is wrong; 1: a flag is (specc's UsageError)
        (["IMAGE:small.png"], "is 10×12 pixels (height×width), but the network takes 12×12", 2),
        (["IMAGE:patch.png", "--window", "20"], "occlusion window (20×20) is larger than the image (12×12)", 1),
        (["IMAGE:patch.png", "--layer", "relu"], "no layer named 'relu'", 1),
        (["--npz", "NPZ", "--samples", "1"], "give the images to explain one way", 1),
        (["--samples", "0,99", "--data", "DATA"], "sample 99 is out of range: the test split of", 1),
        (["--samples", "one"], "--samples one: not a list of indices", 1),
    ],
)
def test_cli_mistakes_are_named_errors(saved, tmp_path, args, message, code):
    from .helpers import make_npz

    data = make_npz(tmp_path / "data", n_train=12, n_test=6) if "DATA" in args else None
    spec = saved / "patch.cnn"
    if data is not None:  # a test split of 12x12 images for the patch network
        with np.load(data / "test.npz") as arrays:
            np.savez(data / "test.npz", x=np.zeros((6, 12, 12), np.uint8), y=arrays["y"] % 2, classes=np.array(["plain", "patch"]))
        np.savez(data / "train.npz", x=np.zeros((12, 12, 12), np.uint8), y=np.arange(12) % 2, classes=np.array(["plain", "patch"]))
    real = [
        str(saved / a[6:]) if a.startswith("IMAGE:") else str(saved / "two.npz") if a == "NPZ" else str(data) if a == "DATA" else a
        for a in args
    ]
    result = invoke("explain", str(spec), "--weights", str(saved / "patch.safetensors"), *real, "-o", str(tmp_path / "out"))
    assert result.exit_code == code and message in result.output, result.output
    assert "Traceback" not in result.output


def test_cli_a_missing_weights_file(saved, tmp_path):
    missing = str(tmp_path / "none.safetensors")
    result = invoke("explain", str(saved / "patch.cnn"), "--weights", missing, "--samples", "0", "-o", str(tmp_path))
    assert result.exit_code == 2 and "no such checkpoint file" in result.output


def test_cli_never_writes_over_an_input_image(saved, tmp_path):
    import shutil

    image = tmp_path / "filters.png"
    shutil.copy(saved / "patch.png", image)
    before = image.read_bytes()
    result = invoke("explain", str(saved / "patch.cnn"), "--weights", str(saved / "patch.safetensors"), str(image), "-o", str(tmp_path))
    assert result.exit_code == 2 and "writing it would destroy that input" in result.output and image.read_bytes() == before
