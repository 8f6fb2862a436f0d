"""Networks written by hand in plain PyTorch, the way a user writes them today.

They are the references the compiled specs are compared against: the
ResNets follow torchvision's architecture and state-dict layout exactly
(torchvision is not installable beside this torch build); the lecture
networks follow the decks in ../shared/seeds/: lecture 001's nn.Sequential as
printed, and torch equivalents of lecture 004's Keras model and lecture 003's
ConvNetJS network, which flatten channels-last as those libraries do.
"""

from __future__ import annotations

import torch
from torch import nn


def conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


def conv1x1(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, width: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = conv3x3(cin, width, stride)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(width, width)
        self.bn2 = nn.BatchNorm2d(width)
        self.downsample = downsample

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, width: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = conv1x1(cin, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, width, stride)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = conv1x1(width, width * 4)
        self.bn3 = nn.BatchNorm2d(width * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        return self.relu(out + identity)


class ResNet(nn.Module):
    def __init__(self, block, layers: list[int], num_classes: int = 1000):
        super().__init__()
        self.cin = 64
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = self._stage(block, 64, layers[0])
        self.layer2 = self._stage(block, 128, layers[1], stride=2)
        self.layer3 = self._stage(block, 256, layers[2], stride=2)
        self.layer4 = self._stage(block, 512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512 * block.expansion, num_classes)

    def _stage(self, block, width: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.cin != width * block.expansion:
            downsample = nn.Sequential(conv1x1(self.cin, width * block.expansion, stride), nn.BatchNorm2d(width * block.expansion))
        stage = [block(self.cin, width, stride, downsample)]
        self.cin = width * block.expansion
        stage += [block(self.cin, width) for _ in range(1, blocks)]
        return nn.Sequential(*stage)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x).flatten(1))


def resnet18() -> ResNet:
    return ResNet(BasicBlock, [2, 2, 2, 2])


def resnet34() -> ResNet:
    return ResNet(BasicBlock, [3, 4, 6, 3])


def resnet50() -> ResNet:
    return ResNet(Bottleneck, [3, 4, 6, 3])


def double_conv(cin: int, cout: int) -> nn.Sequential:
    """Two padded 3x3 conv-batchnorm-relu: a U-Net level's encoder or decoder."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
    )  # fmt: skip


class UNet(nn.Module):
    """A small U-Net (Ronneberger et al., 2015), specs/unet.cnn written by hand: 1x64x64 in, a score per
    class and pixel out. Three max-pool downsamplings, three transposed-conv upsamplings, each joined
    (skip first) with the encoder's features at its size. Modules assigned in the spec's order."""

    def __init__(self, classes: int = 3):
        super().__init__()
        self.enc1, self.enc2, self.enc3, self.bottom = double_conv(1, 16), double_conv(16, 32), double_conv(32, 64), double_conv(64, 128)
        self.up3, self.dec3 = nn.ConvTranspose2d(128, 64, 2, stride=2), double_conv(128, 64)
        self.up2, self.dec2 = nn.ConvTranspose2d(64, 32, 2, stride=2), double_conv(64, 32)
        self.up1, self.dec1 = nn.ConvTranspose2d(32, 16, 2, stride=2), double_conv(32, 16)
        self.head = nn.Conv2d(16, classes, 1)
        self.pool = nn.MaxPool2d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.enc1(x)
        e2 = self.enc2(self.pool(e1))
        e3 = self.enc3(self.pool(e2))
        bottom = self.bottom(self.pool(e3))
        d3 = self.dec3(torch.cat([e3, self.up3(bottom)], 1))
        d2 = self.dec2(torch.cat([e2, self.up2(d3)], 1))
        d1 = self.dec1(torch.cat([e1, self.up1(d2)], 1))
        return self.head(d1)


# torchvision's published parameter counts (torchvision.models docs)
TORCHVISION_PARAMS = {"resnet18": 11_689_512, "resnet34": 21_797_672, "resnet50": 25_557_032}


def lecture_sequential() -> nn.Sequential:
    """Lecture 001's nn.Sequential, as the deck prints it: the max pool comes after the second conv."""
    return nn.Sequential(
        nn.Conv2d(3, 5, 3, padding='same'),
        nn.ReLU(),
        nn.Conv2d(5, 5, 3, padding='same'),
        nn.ReLU(),
        nn.MaxPool2d(2, 2),
        nn.Conv2d(5, 8, 3, padding='same'),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding='same'),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(16 * 16 * 8, 128),
        nn.ReLU(),
        nn.Linear(128, 10)
    )  # fmt: skip


class ChannelsLast(nn.Module):
    """N×C×H×W to N×H×W×C, so that a following Flatten orders features as Keras and ConvNetJS do."""

    def forward(self, x):
        return x.permute(0, 2, 3, 1)


def keras_mnist() -> nn.Sequential:
    """Lecture 004's Keras model, layer for layer as its summary table, in torch.

    Conv2D and Dense carry their ReLU inside them in Keras (the table shows no activation rows);
    here each is a layer of its own. Keras' padding='same' with a 2×2 kernel pads one pixel after
    and none before, as torch's padding='same' does. Keras flattens a channels-last 5×5×256 map,
    so the first Dense's inputs come in (h, w, c) order: ChannelsLast before Flatten keeps that.
    """
    return nn.Sequential(
        nn.Conv2d(1, 16, 2, padding="same"), nn.ReLU(),        # conv2d          (None, 28, 28, 16)   80
        nn.MaxPool2d(2),                                       # max_pooling2d   (None, 14, 14, 16)   0
        nn.Conv2d(16, 128, 3), nn.ReLU(),                      # conv2d_1        (None, 12, 12, 128)  18560
        nn.Conv2d(128, 256, 3), nn.ReLU(),                     # conv2d_2        (None, 10, 10, 256)  295168
        nn.MaxPool2d(2),                                       # max_pooling2d_1 (None, 5, 5, 256)    0
        nn.Dropout(0.25),                                      # dropout
        ChannelsLast(), nn.Flatten(),                          # flatten         (None, 6400)
        nn.Linear(6400, 128), nn.ReLU(),                       # dense           (None, 128)          819328
        nn.Dropout(0.5),                                       # dropout_1
        nn.Linear(128, 10),                                    # dense_1         (None, 10)           1290
        nn.Softmax(dim=1),                                     # activation
    )  # fmt: skip


def convnetjs_cifar10() -> nn.Sequential:
    """Lecture 003's ConvNetJS CIFAR-10 network in torch: three conv 5×5 (pad 2) + ReLU + 2×2 max pool, fc 10, softmax.

    ConvNetJS keeps a volume's values in (y, x, depth) order, so its fc layer reads the 4×4×20
    map channels-last, as Keras does: ChannelsLast before Flatten.
    """
    return nn.Sequential(
        nn.Conv2d(3, 16, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2, 2),    # conv (32x32x16), pool (16x16x16)
        nn.Conv2d(16, 20, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2, 2),   # conv (16x16x20), pool (8x8x20)
        nn.Conv2d(20, 20, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2, 2),   # conv (8x8x20), pool (4x4x20)
        ChannelsLast(), nn.Flatten(),
        nn.Linear(320, 10),                                               # fc (1x1x10)
        nn.Softmax(dim=1),                                                # softmax (1x1x10)
    )  # fmt: skip
