"""The README's pictures: specs/fashion.cnn trained briefly, then one of each picture specc draws.

    python examples/pictures/make_pictures.py examples/pictures                      # what the README shows
    python examples/pictures/make_pictures.py /tmp/pictures --limit 600 --epochs 1   # a quick look

Needs the installed Fashion-MNIST (Debian's dataset-fashion-mnist) or --data.
Writes into OUT_DIR: diagram.png (specc draw of the spec), curves.png, confusion.png,
mistakes.png (from the run), filters.png, top.png, attribution.png and features.png (from
explain). The run itself goes into a temporary folder.

It lives in a folder of its own, beside the pictures it makes, because it needs
an argument and minutes of training: tests/test_examples.py runs the scripts
directly in examples/ without arguments; tests/test_report.py runs this one.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import specc
from specc import draw as diagram
from specc.explain import Explainer, Settings, explain
from specc.explain.samples import from_test_split, test_split
from specc.runners.train import train

SPEC = Path(__file__).resolve().parents[2] / "specs" / "fashion.cnn"
SAMPLES = [0, 1]  # the first test images of Fashion-MNIST: an ankle boot (explained) and a pullover (its feature maps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--limit", type=int, default=12000, help="training samples (the README's: 12000)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--data", help="data folder (default: the installed Fashion-MNIST)")
    args = parser.parse_args()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        draw(out, Path(folder), args)
    print(f"pictures in {out}")


def draw(out: Path, scratch: Path, args: argparse.Namespace) -> None:
    diagram.write(specc.load(SPEC), out / "diagram.png")
    run = scratch / "run"
    flags = {"epochs": args.epochs, "limit": args.limit, "data": args.data, "precision": "fp32", "seed": 0}
    train(SPEC, flags, out=run)
    for name in ("curves.png", "confusion.png", "mistakes.png"):
        shutil.copy(run / name, out / name)

    explainer = Explainer.open(run / "spec.cnn", run / "best.safetensors")
    samples = from_test_split(test_split(args.data, explainer.input_shape), SAMPLES)
    explain(explainer, samples, scratch / "explained", Settings(layer="relu1", top=5))  # the README shows the first layer's maps
    chosen = {"filters.png": "filters.png", "test_0-top.png": "top.png", "test_0-attribution.png": "attribution.png"}
    for name, target in (chosen | {"test_1-features-relu1.png": "features.png"}).items():
        shutil.copy(scratch / "explained" / name, out / target)


if __name__ == "__main__":
    main()
