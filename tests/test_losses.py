"""The loss a spec trains with, and every metric's value against a computation by hand from its definition.

No training here: `choose` reads a checked network and targets; `Task.sums` and `summarise` are fed
scores whose right answers are worked out in the test itself (sklearn is not installed, and would
be a second implementation of the same formulas anyway).
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch.nn import functional as F  # noqa: N812

import specc
from specc.errors import SpeccError
from specc.runners.losses import AUC_BINS, Task, binned_auc, choose, logits_model, mean_iou

HEAD = "network n\ninput 1x8x8\nconv K=4 F=3 P=1\nrelu\nflatten\n"


def network(tmp_path, text: str):
    path = tmp_path / "n.cnn"
    path.write_text(text)
    net = specc.load(path)
    net.check()
    return net


LABELS = torch.tensor([0, 1, 2, 1])
TWO = torch.tensor([0, 1, 1, 0])
VALUES = torch.rand(4, 3)
MULTI = torch.tensor([[0, 1, 1], [1, 0, 0], [0, 0, 1], [1, 1, 0]]).float()


@pytest.mark.parametrize(
    ("tail", "y", "classes", "kind", "loss", "strip"),
    [
        ("fc 3\nsoftmax\n", LABELS, ["a", "b", "c"], "classes", "cross_entropy", "softmax"),
        ("fc 3\n", LABELS, ["a", "b", "c"], "classes", "cross_entropy", None),
        ("fc 1\nsigmoid\n", TWO, ["no", "yes"], "binary", "bce", "sigmoid"),
        ("fc 1\n", TWO, ["no", "yes"], "binary", "bce", None),
        ("fc 3\nsigmoid\n", MULTI, ["0", "1"], "multilabel", "bce", "sigmoid"),
        ("fc 3\n", VALUES, ["0", "1", "2"], "regression", "mse", None),
    ],
)
def test_the_loss_follows_the_spec_and_the_targets(tmp_path, tail, y, classes, kind, loss, strip):
    task = choose(network(tmp_path, HEAD + tail).network, "auto", y, classes)
    assert (task.kind, task.loss, task.strip) == (kind, loss, strip)
    assert len(task.classes) == (2 if kind == "binary" else task.outputs)  # one score names two classes


def test_a_map_out_of_the_network_is_per_pixel_cross_entropy(tmp_path):
    net = network(tmp_path, "network seg\ninput 1x16x16\nconv K=8 F=3 P=1\nrelu\nconv K=3 F=3 P=1\n")
    masks = torch.randint(0, 3, (4, 16, 16))
    task = choose(net.network, "auto", masks, ["0", "1", "2"])
    assert (task.kind, task.outputs, task.spatial) == ("pixels", 3, True)
    with pytest.raises(SpeccError, match="masks are 8×8"):
        choose(net.network, "auto", masks[:, :8, :8], ["0", "1", "2"])
    with pytest.raises(SpeccError, match="classes up to 5"):
        choose(net.network, "auto", masks + 3, [str(i) for i in range(6)])


def test_a_one_channel_map_is_foreground_or_not(tmp_path):
    net = network(tmp_path, "network fg\ninput 1x16x16\nconv K=1 F=3 P=1\nsigmoid\n")
    masks = torch.randint(0, 2, (4, 16, 16))
    task = choose(net.network, "auto", masks, ["0", "1"])
    assert (task.kind, task.loss, task.outputs, task.strip, task.one_channel_map) == ("pixels", "bce", 2, "sigmoid", True)
    with pytest.raises(SpeccError, match="targets from 0 to 1"):
        choose(net.network, "auto", masks * 2, ["0", "1", "2"])
    logits = torch.tensor([[[2.0, -1.0], [-3.0, 0.5]]]).unsqueeze(1)  # 1 sample, 1 channel, 2x2
    truth = torch.tensor([[[1, 1], [0, 0]]])
    result = sums_of(task, logits, truth, batches=1)
    # said [[1, 0], [0, 1]]: background IoU 1/3 (one of three pixels), foreground 1/3
    assert result.metrics["iou"] == pytest.approx(1 / 3) and result.metrics["acc"] == pytest.approx(2 / 4)
    bce = F.binary_cross_entropy_with_logits(logits[:, 0], truth.float()).item()
    assert result.loss == pytest.approx(bce, rel=1e-6)


@pytest.mark.parametrize(
    ("tail", "loss", "y", "classes", "fragment"),
    [
        ("fc 1\nsigmoid\n", "cross_entropy", TWO, ["a", "b"], "the spec ends in sigmoid"),
        ("fc 1\n", "cross_entropy", TWO, ["a", "b"], "one output cannot be a cross-entropy"),
        ("fc 3\nsoftmax\n", "bce", LABELS, ["a", "b", "c"], "the spec ends in softmax"),
        ("fc 1\nsigmoid\n", "auto", LABELS, ["a", "b", "c"], "one sigmoid output separates two classes, but the data has 3"),
        ("fc 3\nsigmoid\n", "auto", LABELS, ["a", "b", "c"], "3 sigmoid outputs need 3 yes/no labels per sample"),
        ("fc 3\n", "mse", LABELS, ["a", "b", "c"], "mean squared error needs float targets"),
        ("fc 2\n", "mse", VALUES, ["0", "1", "2"], "outputs 2 values per sample, but the data has 3"),
        ("fc 3\n", "cross_entropy", VALUES, ["0", "1", "2"], "cross-entropy needs integer class labels"),
        ("fc 3\nsigmoid\n", "bce", VALUES * 3, ["0", "1", "2"], "targets from 0 to 1"),
        ("fc 4\nsoftmax\n", "auto", LABELS, ["a", "b", "c"], "outputs 4 scores but the data has 3 classes"),
    ],
)
def test_a_loss_that_does_not_fit_is_refused_with_a_hint(tmp_path, tail, loss, y, classes, fragment):
    with pytest.raises(SpeccError) as caught:
        choose(network(tmp_path, HEAD + tail).network, loss, y, classes)
    assert fragment in caught.value.render() and caught.value.exit_code == 2
    assert "hint:" in caught.value.render()


def test_the_folded_activation_is_the_one_the_loss_takes(tmp_path):
    net = network(tmp_path, HEAD + "fc 1\nsigmoid\n")
    task = choose(net.network, "auto", TWO, ["no", "yes"])
    model = logits_model(net.network, net.to_torch(), task)
    full = net.to_torch()
    full.load_state_dict(model.state_dict())
    x = torch.randn(5, 1, 8, 8)
    assert torch.allclose(torch.sigmoid(model(x)), full(x), atol=1e-6)


def test_mse_keeps_a_final_activation(tmp_path):
    net = network(tmp_path, HEAD + "fc 3\nsigmoid\n")
    task = choose(net.network, "mse", VALUES, ["0", "1", "2"])
    assert task.strip is None and logits_model(net.network, net.to_torch(), task)(torch.randn(2, 1, 8, 8)).min() >= 0


# --- the metrics by hand ------------------------------------------------------------------


def sums_of(task: Task, out: torch.Tensor, y: torch.Tensor, batches: int = 2):
    """The task's summary over `batches` pieces: sums must add up across batches as across processes."""
    pieces = zip(out.tensor_split(batches), y.tensor_split(batches), strict=True)
    return task.summarise(sum(task.sums(o, t) for o, t in pieces))


def auc_by_hand(scores: list[float], truth: list[int]) -> float:
    """Mann-Whitney: the fraction of (positive, negative) pairs the scores put in the right order, ties half."""
    pairs = [(p, n) for p, n in itertools.product(range(len(scores)), repeat=2) if truth[p] == 1 and truth[n] == 0]
    return sum(1.0 if scores[p] > scores[n] else 0.5 if scores[p] == scores[n] else 0.0 for p, n in pairs) / len(pairs)


def test_accuracy_loss_and_confusion_of_classes():
    out = torch.tensor([[2.0, 0.1, 0.3], [0.2, 1.0, 3.0], [0.0, 0.5, 2.0], [1.0, 2.0, 0.0], [3.0, 0.0, 0.0]])
    y = torch.tensor([0, 1, 2, 1, 2])
    result = sums_of(Task("classes", "cross_entropy", 3), out, y)
    assert result.metrics == {"acc": pytest.approx(3 / 5)}
    assert result.confusion == [[1, 0, 0], [0, 1, 1], [1, 0, 1]]
    by_hand = sum(-math.log(math.exp(o[t]) / sum(math.exp(v) for v in o)) for o, t in zip(out.tolist(), y.tolist(), strict=True)) / 5
    assert result.loss == pytest.approx(by_hand, rel=1e-6)


def test_auc_and_binary_cross_entropy():
    logits = [2.5, -1.0, 0.3, 0.3, -2.0, 1.2, -0.4, 4.0]
    truth = [1, 0, 1, 0, 0, 1, 1, 0]
    result = sums_of(Task("binary", "bce", 1), torch.tensor(logits).view(-1, 1), torch.tensor(truth).float(), batches=3)
    assert result.metrics["auc"] == pytest.approx(auc_by_hand(logits, truth))  # distinct bins, and one real tie
    said = [int(s > 0) for s in logits]
    assert result.metrics["acc"] == pytest.approx(sum(s == t for s, t in zip(said, truth, strict=True)) / 8)
    assert result.confusion == [[sum(1 for s, t in zip(said, truth, strict=True) if t == a and s == b) for b in (0, 1)] for a in (0, 1)]
    probability = [1 / (1 + math.exp(-s)) for s in logits]
    bce = [-(t * math.log(p) + (1 - t) * math.log(1 - p)) for p, t in zip(probability, truth, strict=True)]
    assert result.loss == pytest.approx(sum(bce) / 8, rel=1e-6)


def test_auc_of_many_random_scores_is_within_a_bin_of_the_exact_one():
    torch.manual_seed(0)
    truth = (torch.rand(300) < 0.4).long()
    scores = torch.randn(300) + truth * 1.0
    result = sums_of(Task("binary", "bce", 1), scores.view(-1, 1), truth.float())
    assert result.metrics["auc"] == pytest.approx(auc_by_hand(scores.tolist(), truth.tolist()), abs=2e-3)


def test_auc_of_one_class_only_is_undefined_and_the_best_epoch_falls_back_to_the_loss():
    task = Task("binary", "bce", 1)
    result = task.summarise(task.sums(torch.tensor([[1.0], [2.0]]), torch.tensor([1.0, 1.0])))
    assert result.metrics["auc"] is None and task.score(result) == -result.loss
    assert binned_auc(torch.zeros(AUC_BINS), torch.ones(AUC_BINS)) is None


def test_micro_f1_of_labels():
    out = torch.tensor([[1.0, -1.0, 2.0], [0.5, 0.5, -3.0], [-1.0, -1.0, 1.0], [-2.0, 3.0, 0.1]])
    said = (out > 0).int()
    truth = MULTI.int()
    tp, fp, fn = int((said & truth).sum()), int((said & (1 - truth)).sum()), int(((1 - said) & truth).sum())
    result = sums_of(Task("multilabel", "bce", 3), out, MULTI)
    assert (tp, fp, fn) == (4, 3, 2)  # worked out on paper: the figures the formula below takes
    assert result.metrics["f1"] == pytest.approx(2 * tp / (2 * tp + fp + fn))
    assert result.loss == pytest.approx(F.binary_cross_entropy_with_logits(out, MULTI).item(), rel=1e-6)


def test_mae_and_mse_of_values():
    out = torch.tensor([[1.0, 2.0], [0.0, -1.0], [3.0, 3.0]])
    y = torch.tensor([[1.5, 2.0], [1.0, 1.0], [3.0, 0.0]])
    result = sums_of(Task("regression", "mse", 2), out, y)
    errors = [0.5, 0.0, 1.0, 2.0, 0.0, 3.0]
    assert result.metrics["mae"] == pytest.approx(sum(errors) / 6)
    assert result.loss == pytest.approx(sum(e * e for e in errors) / 6)
    assert Task("regression", "mse", 2).score(result) == pytest.approx(-sum(errors) / 6)  # lower is better


def test_mean_iou_of_masks():
    # 1 sample, 3 classes on a 2x3 map; scores one-hot so the prediction is the map `said`
    said = torch.tensor([[0, 0, 1], [1, 2, 2]])
    truth = torch.tensor([[0, 1, 1], [1, 2, 0]])
    out = F.one_hot(said, 3).permute(2, 0, 1).float().unsqueeze(0) * 5
    result = sums_of(Task("pixels", "cross_entropy", 3), out, truth.unsqueeze(0), batches=1)
    iou = []
    for c in range(3):
        inter = int(((said == c) & (truth == c)).sum())
        union = int(((said == c) | (truth == c)).sum())
        iou.append(inter / union)
    assert iou == [1 / 3, 2 / 3, 1 / 2]
    assert result.metrics["iou"] == pytest.approx(sum(iou) / 3)
    assert result.metrics["acc"] == pytest.approx(4 / 6)
    assert mean_iou(torch.zeros(3, 3)) is None


def test_augmentation_moves_masks_and_value_maps_with_their_images():
    from specc.runners.augment import augment_pair

    torch.manual_seed(0)
    x = torch.rand(16, 2, 8, 8)
    masks = (x[:, 0] > 0.5).long() + (x[:, 1] > 0.5).long()  # a function of each pixel, so it must survive any move
    moved, moved_masks = augment_pair(x, masks, ["flip", "crop", "translate"])
    assert not torch.equal(moved, x)  # something moved
    assert torch.equal(moved_masks, (moved[:, 0] > 0.5).long() + (moved[:, 1] > 0.5).long())
    moved, moved_values = augment_pair(x, x * 3, ["flip", "translate"])
    assert torch.allclose(moved_values, moved * 3)


def test_label_smoothing_of_values_is_refused(tmp_path):
    net = network(tmp_path, HEAD + "fc 3\n")
    with pytest.raises(SpeccError, match="label smoothing"):
        choose(net.network, "auto", VALUES, ["0", "1", "2"], label_smoothing=0.1)
    assert choose(net.network, "auto", LABELS, ["a", "b", "c"], label_smoothing=0.1).kind == "classes"
