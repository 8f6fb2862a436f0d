"""`specc import`: an ONNX model or a PyTorch `module:callable` to a `.cnn` spec and, on request, its weights as safetensors."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("import")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option(
    "-o", "--output", "--out", "output", type=click.Path(dir_okay=False), help="The spec to write [default: MODEL's name with .cnn]."
)
@click.option("--weights", type=click.Path(dir_okay=False), help="Also write the weights (.safetensors): the graph's, or the module's own.")
@click.option(
    "--input", "input_shape", help="The input size CxHxW: for a module:callable, or where the graph's is symbolic (e.g. 3x224x224)."
)
def import_(model: str, output: str | None, weights: str | None, input_shape: str | None):
    """Write MODEL as a spec: residual and concat groups, repeated units as blocks, layer names from
    the source. MODEL is an ONNX file or `module:callable` building a torch.nn.Module (with --input)."""
    from ..errors import UsageError
    from ..importers import import_onnx, write
    from ..importers.pytorch import import_module, is_target
    from ..outputs import refuse_replacing

    target = is_target(model)
    output = output or (f"{model.rpartition(':')[2]}.cnn" if target else Path(model).with_suffix(".cnn").name)
    refuse_replacing({"-o": output, "--weights": weights}, {"the model": model})
    shape = None
    if input_shape is not None:
        try:
            shape = tuple(int(n) for n in input_shape.lower().split("x"))
        except ValueError:
            raise UsageError(f"--input {input_shape} is not a size", hint="write it as C x H x W, e.g. --input 3x224x224") from None
    imported = import_module(model, shape, Path(output).stem) if target else import_onnx(model, Path(output).stem, shape)
    write(imported, output, weights)
    report = imported.net.check()
    layers = len(imported.net.network.layers())
    click.echo(f"wrote {output}: {layers} layers, {report.total_params:,} parameters, {len(imported.text.splitlines())} lines")
    if weights:
        carried = ", ".join(key.removeprefix("specc.") for key in imported.metadata)
        click.echo(f"wrote {weights}: {len(imported.tensors)} tensors" + (f", and the file's {carried}" if carried else ""))
