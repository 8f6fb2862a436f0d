#!/usr/bin/env python3
"""The Python API in a few lines: the same verbs as the command line.

usage: python examples/api_tour.py
"""

from pathlib import Path

import specc

SPEC = """
network tiny_resnet
input 3x32x32

block basic(K, S=1) {
    residual shortcut=auto {
        conv K=K F=3 S=S P=1 bias=false
        batchnorm
        relu
        conv K=K F=3 P=1 bias=false
        batchnorm
    }
    relu
}

stem: conv K=16 F=3 P=1
relu
stage1: basic(16) x2
stage2: basic(32, S=2)
pool avg global
flatten
fc 10
"""


def main() -> None:
    net = specc.loads(SPEC, "tiny_resnet.cnn")
    report = net.check()  # pure integer arithmetic, no torch
    print(f"{report.network}: {report.total_params:,} parameters, {report.total_macs:,} MACs")
    for row in report.layers:
        print(f"  {row.name:<28} {row.kind:<10} {'x'.join(map(str, row.output_shape)):>10} {row.params:>8,}")

    import torch

    model = net.to_torch()  # an nn.Module whose names follow the spec
    print(model(torch.randn(2, *net.input_shape)).shape)
    print(list(model.state_dict())[:4])

    out = Path("tiny_resnet_model.py")
    out.write_text(net.to_source())  # the same module as a file that needs only torch
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
