"""What a run draws besides its curves: confusion.png, mistakes.png, TensorBoard event files, report.html.

One tiny run (module-scoped) with --report and --tensorboard serves every test;
the report page is opened in Debian's headless chromium by a slow test.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch

from specc.explain import page
from specc.runners.checkpoint import load as load_checkpoint
from specc.runners.evaluate import Normalise
from specc.runners.mistakes import confusion_counts, predict_probabilities
from specc.runners.train import train

from .helpers import REAL_FASHION_MNIST, invoke, make_npz, quick, write_spec


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("report")
    spec, data = write_spec(folder), make_npz(folder / "data", n_train=96, n_test=30)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(page, "EXPLAINED", 1)  # one test image explained in full draws every kind of picture; four take longer
        train(spec, quick(data, epochs=2), out=folder / "run", tensorboard=folder / "tb", report=True)
    return folder


def test_confusion_counts_equal_a_hand_count():
    predicted, true = torch.tensor([0, 2, 1, 1, 0, 2, 2]), torch.tensor([0, 2, 2, 1, 1, 2, 0])
    by_hand = [[0] * 3 for _ in range(3)]
    for p, t in zip(predicted.tolist(), true.tolist(), strict=True):
        by_hand[t][p] += 1
    assert confusion_counts(predicted, true, 3).tolist() == by_hand


def test_the_run_draws_its_test_before_test_json(run):
    folder = run / "run"
    for name in ("confusion.png", "mistakes.png", "report.html"):
        assert (folder / name).stat().st_size > 1000, name
        assert (folder / name).stat().st_mtime_ns <= (folder / "test.json").stat().st_mtime_ns, name


def test_the_drawn_confusion_is_the_count_of_test_json(run):
    """The best weights' predictions, counted by hand, give test.json's matrix (counted there by the task's sums)."""
    import numpy as np

    from specc import load

    folder = run / "run"
    record = json.loads((folder / "test.json").read_text())
    net = load(folder / "spec.cnn")
    from specc.runners.losses import logits_model

    model = logits_model(net.network, net.to_torch())
    model.load_state_dict(load_checkpoint(folder / "best.safetensors")[0])
    config = json.loads((folder / "config.json").read_text())
    with np.load(run / "data" / "test.npz") as arrays:
        x, y = torch.from_numpy(arrays["x"]).float().div(255)[:, None], torch.from_numpy(arrays["y"])
    normalise = Normalise(config["normalisation"]["mean"], config["normalisation"]["std"], torch.device("cpu"), 3)
    predicted = predict_probabilities(model, x, normalise).argmax(dim=1)
    by_hand = [[int(((y == t) & (predicted == p)).sum()) for p in range(3)] for t in range(3)]
    assert confusion_counts(predicted, y, 3).tolist() == by_hand == record["confusion"]


def test_tensorboard_events_equal_metrics_jsonl(run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tb"), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    rows = [json.loads(line) for line in (run / "run" / "metrics.jsonl").read_text().splitlines()]
    for tag, key in (
        ("loss/train", "train_loss"),
        ("loss/val", "val_loss"),
        ("acc/train", "train_acc"),
        ("acc/val", "val_acc"),
        ("lr", "lr"),
    ):
        logged = [(e.step, e.value) for e in events.Scalars(tag)]
        assert logged == [(row["epoch"], pytest.approx(row[key], rel=1e-6)) for row in rows], tag
    filters = events.Images("filters/conv1")
    assert [image.step for image in filters] == [1, 2] and filters[0].width > 0
    assert events.Scalars("acc/test")[0].value == pytest.approx(json.loads((run / "run" / "test.json").read_text())["accuracy"])


def test_tensorboard_missing_is_refused_before_the_run_directory(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails as without the package
    spec, data = write_spec(tmp_path), make_npz(tmp_path / "data", n_train=24, n_test=6)
    out = tmp_path / "run"
    result = invoke("train", str(spec), "--data", str(data), "--epochs", "1", "--tensorboard", str(tmp_path / "tb"), "-o", str(out))
    assert result.exit_code == 1 and "--tensorboard needs the tensorboard package" in result.output
    assert "pip install 'specc[tensorboard]'" in result.output and not out.exists()


def test_the_report_is_self_contained(run):
    page = (run / "run" / "report.html").read_text()
    sources = re.findall(r'src="([^"]*)"', page)
    assert len(sources) > 10 and all(s.startswith("data:image/") for s in sources)
    assert "http://" not in page and "https://" not in page and 'http-equiv="refresh"' not in page  # the final page stays still
    for shown in ("network tiny", "conv1", "Training curves", "Confusion matrix", "What the first layer learned", "top 3 classes"):
        assert shown in page, shown
    if shutil.which("dot"):  # specc draw's diagram, inline as SVG
        assert '<h2>Diagram</h2><p><img alt="the network as a diagram" src="data:image/svg+xml;base64,' in page


def test_specc_report_and_eval_pictures(run, tmp_path):
    result = invoke("report", str(run / "run"), "-o", str(tmp_path / "page.html"), "--samples", "29")
    assert result.exit_code == 0, result.output
    page = (tmp_path / "page.html").read_text()
    assert "Test image: test 29" in page and "Test image: test 0" not in page
    out = tmp_path / "eval"
    spec, weights = str(run / "run" / "spec.cnn"), str(run / "run" / "best.safetensors")
    result = invoke("eval", spec, "--weights", weights, "--data", str(run / "data"), "-o", str(out))
    assert result.exit_code == 0 and (out / "confusion.png").is_file() and (out / "mistakes.png").is_file()


def test_report_of_a_folder_that_is_not_a_run(tmp_path):
    result = invoke("report", str(tmp_path))
    assert result.exit_code == 2 and "is not a run directory with weights" in result.output


_PROBE = """<script>
window.addEventListener('error', e => console.error('SPECC-ERROR ' + e.message));
window.addEventListener('load', () => {
  const images = Array.from(document.images);
  const broken = images.filter(i => !(i.complete && i.naturalWidth > 0)).length;
  console.log('SPECC-IMAGES ' + images.length + ' ' + broken);
});
</script>"""


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed")
def test_the_report_renders_in_chromium(run, tmp_path):
    """One headless chromium start: a probe script reports every image's natural width; the page itself logs nothing."""
    probed = tmp_path / "probed.html"
    probed.write_text((run / "run" / "report.html").read_text().replace("</body>", _PROBE + "</body>"))
    screenshot = tmp_path / "report.png"
    with tempfile.TemporaryDirectory() as profile:
        flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking"]
        flags += ["--disable-component-update", "--disable-sync", f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0"]
        command = ["chromium", *flags, "--window-size=1280,4000", f"--screenshot={screenshot}", probed.as_uri()]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    counts = [re.search(r"SPECC-IMAGES (\d+) (\d+)", line) for line in console]
    assert [m.groups() for m in counts if m] and all(m.group(2) == "0" for m in counts if m), done.stderr[-2000:]
    assert int(next(m for m in counts if m).group(1)) > 10
    assert [line for line in console if "SPECC-IMAGES" not in line] == []  # no errors, nor anything else, in the console
    assert screenshot.stat().st_size > 10_000


@pytest.mark.slow
@pytest.mark.skipif(not REAL_FASHION_MNIST.is_dir(), reason="Fashion-MNIST is not installed")
def test_the_readme_pictures_script_runs(tmp_path):
    """examples/pictures/make_pictures.py on a few hundred samples: every picture the README shows is drawn."""
    script = Path(__file__).resolve().parent.parent / "examples" / "pictures" / "make_pictures.py"
    command = [sys.executable, str(script), str(tmp_path / "pictures"), "--limit", "300", "--epochs", "1"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    drawn = sorted(p.name for p in (tmp_path / "pictures").iterdir())
    committed = sorted(p.name for p in script.parent.glob("*.png"))
    assert (
        drawn
        == committed
        == sorted(
            ["attribution.png", "confusion.png", "curves.png", "diagram.png", "features.png", "filters.png", "mistakes.png", "top.png"]
        )
    )
