"""What an exported network's outputs say, by its task: numpy only, as predict runs without torch.

| specc.task   | the output per sample   | a prediction                                             |
|--------------|-------------------------|----------------------------------------------------------|
| classes      | K scores or a softmax   | the top classes, with softmax probabilities              |
| binary       | one score or a sigmoid  | the probability of the positive class (the second name)  |
| multilabel   | K scores or sigmoids    | each label's probability; those over 0.5 are on          |
| regression   | values                  | the values as the network gives them                     |
| segmentation | a map C×H×W             | the class of each pixel, counted per class               |

specc.output says whether the graph ends in its softmax or sigmoid (`probabilities`) or not
(`logits`): the activation is applied here only where the graph does not have it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

THRESHOLD = 0.5  # a label is on, a pixel foreground, from this probability


@dataclass
class Prediction:
    source: str  # the image file, or "file.npz[3]" for an array's sample
    top: list[tuple[str, float]]  # classes: (class, probability), most likely first; binary: (positive class, probability)
    task: str = "classes"
    labels: list[tuple[str, float]] = field(default_factory=list)  # multilabel: (label, probability), in the network's order
    values: np.ndarray | None = None  # regression: the outputs as they are
    names: list[str] = field(default_factory=list)  # regression: a name per value, where the output is a vector
    mask: np.ndarray | None = None  # segmentation: H×W class indices
    pixels: list[tuple[str, int]] = field(default_factory=list)  # segmentation: (class, pixels of it), every class

    @property
    def on(self) -> list[str]:
        """multilabel: the labels over the threshold."""
        return [name for name, p in self.labels if p > THRESHOLD]

    def to_json(self) -> dict:
        head = {"source": self.source}
        if self.task == "classes":  # as before tasks existed: no "task" key for files of old
            return head | {"top": [{"class": name, "probability": p} for name, p in self.top]}
        head["task"] = self.task
        if self.task == "binary":
            ((name, p),) = self.top
            return head | {"class": name, "probability": p}
        if self.task == "multilabel":
            return head | {"labels": [{"label": name, "probability": p, "on": p > THRESHOLD} for name, p in self.labels]}
        if self.task == "regression":
            values = self.values.tolist()
            return head | ({"values": dict(zip(self.names, values, strict=True))} if self.names else {"values": values})
        height, width = self.mask.shape
        return head | {"height": height, "width": width, "pixels": dict(self.pixels)}


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x.astype(np.float64)))


def softmax(scores: np.ndarray, axis: int = 1) -> np.ndarray:
    shifted = np.exp(scores - scores.max(axis=axis, keepdims=True))
    return shifted / shifted.sum(axis=axis, keepdims=True)


def probabilities(task: str, output: str, scores: np.ndarray) -> np.ndarray:
    """The network's outputs as probabilities: softmax over classes, sigmoid for yes/no outputs (where the graph lacks it)."""
    if output == "probabilities" or task == "regression":
        return scores
    if task in ("binary", "multilabel") or (task == "segmentation" and scores.shape[1] == 1):
        return sigmoid(scores)
    return softmax(scores)


def read(task: str, output: str, scores: np.ndarray, classes: list[str], sources: list[str], top: int) -> list[Prediction]:
    """A Prediction per sample from the network's N × ... outputs."""
    if task == "regression":
        names = classes if len(classes) == scores[0].size and scores.ndim == 2 else []
        return [Prediction(source, [], task, values=row, names=names) for source, row in zip(sources, scores, strict=True)]
    p = probabilities(task, output, scores)
    if task == "binary":
        return [Prediction(source, [(classes[1], float(row[0]))], task) for source, row in zip(sources, p, strict=True)]
    if task == "multilabel":
        return [
            Prediction(source, [], task, labels=list(zip(classes, map(float, row), strict=True)))
            for source, row in zip(sources, p, strict=True)
        ]
    if task == "segmentation":
        masks = (p[:, 0] > THRESHOLD).astype(np.int64) if p.shape[1] == 1 else p.argmax(1)
        names = classes or [str(c) for c in range(max(p.shape[1], 2))]
        return [_segmented(source, mask, names) for source, mask in zip(sources, masks, strict=True)]
    order = np.argsort(-p, axis=1, kind="stable")[:, :top]
    return [Prediction(source, [(classes[i], float(row[i])) for i in best]) for source, row, best in zip(sources, p, order, strict=True)]


def _segmented(source: str, mask: np.ndarray, names: list[str]) -> Prediction:
    counts = np.bincount(mask.ravel(), minlength=len(names))
    return Prediction(source, [], "segmentation", mask=mask, pixels=[(name, int(n)) for name, n in zip(names, counts, strict=True)])
