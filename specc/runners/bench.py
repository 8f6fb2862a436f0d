"""How fast a network runs on this CPU, in the manner of `caffe time`.

`measure` times every layer's forward and backward pass of the torch module in
training mode (hooks before and after each leaf module, both ways, averaged
over iterations after a warm-up), then the whole network in inference, torch
eager against onnxruntime on the same number of threads: latency at batch 1
and throughput at a larger batch. `tables` draws those figures.

Per-layer times are wall-clock between hooks, so they include the hooks' own
cost, and in a residual network a layer's backward window can contain work of
the parallel branch; the totals are timed separately. Nothing here means much
on a busy machine: with a thread per core, one core taken by another process
stalls every parallel operator, so the load average is recorded alongside.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from ..api import Net
from .evaluate import check_train_batch

WARMUP = 2  # iterations before timing: first calls choose kernels and allocate
MIN_SECONDS = 0.5  # whole-network timings run at least this long, so fast networks get many samples


@dataclass
class LayerTime:
    name: str
    kind: str
    forward_ms: float
    backward_ms: float


@dataclass
class Speed:
    """One whole-network timing: milliseconds per batch, torch eager and onnxruntime."""

    batch: int
    torch_ms: float
    onnxruntime_ms: float

    @property
    def speedup(self) -> float:
        """How many times faster onnxruntime is than torch eager."""
        return self.torch_ms / self.onnxruntime_ms

    def per_second(self, ms: float) -> float:
        return self.batch * 1000 / ms


@dataclass
class Bench:
    network: str
    batch: int
    iters: int
    threads: int
    layers: list[LayerTime]
    forward_ms: float  # whole forward pass in training mode, hooks included
    backward_ms: float
    latency: Speed  # batch 1
    throughput: Speed  # batch `batch`
    load: float | None  # 1-minute load average before measuring; None where the OS has none
    cores: int

    @property
    def busy(self) -> bool:
        """Another process kept a core busy: the timings are not to be trusted."""
        return self.load is not None and self.load >= 1.0


def machine_load() -> tuple[float | None, int]:
    """The 1-minute load average (None where the OS has none) and the number of cores."""
    return (os.getloadavg()[0] if hasattr(os, "getloadavg") else None), os.cpu_count() or 1


def default_threads(load: float | None, cores: int) -> int:
    """Threads for both engines: torch's own count, less the cores other processes keep busy.

    With a thread per core, one core taken by another process stalls every parallel operator of the
    engine with more threads, and the race measures the stall (an 824x "speed-up" at batch 1).
    """
    import torch

    busy = round(load) if load is not None else 0
    return max(1, min(torch.get_num_threads(), cores - busy))


def busy_warning(load: float | None, cores: int) -> str | None:
    """What to tell the user before measuring on a busy machine, or None."""
    if load is None or load < 1.0:
        return None
    return (
        f"warning: the load average is {load:.2f} on {cores} cores: another process is busy, and the timings will not be "
        "reliable; both engines run on the same pinned number of threads (--threads), fewer than the cores"
    )


def measure(net: Net, batch: int = 16, iters: int = 10, threads: int | None = None) -> Bench:
    """Per-layer and whole-network timings of `net` with random weights, on the CPU.

    torch and onnxruntime run on the same number of threads (`threads`, by default `default_threads`).
    """
    import torch

    net.check()
    check_train_batch(net.network, batch, "--batch")  # the per-layer timings run forward and backward in training mode
    load, cores = machine_load()
    threads = threads or default_threads(load, cores)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        model = net.to_torch()
        kinds = {layer.name: layer.kind.name for layer in net.network.layers()}
        layers, forward_ms, backward_ms = _layer_times(model, torch.randn(batch, *net.input_shape), iters, kinds)
        model.eval()
        with tempfile.TemporaryDirectory() as folder:
            from .export import export

            path = export(net, Path(folder) / f"{net.name}.onnx").path
            session = _session(path, threads)
            latency = _speed(model, session, (1, *net.input_shape), iters)
            throughput = _speed(model, session, (batch, *net.input_shape), iters)
    finally:
        torch.set_num_threads(before)
    return Bench(net.name, batch, iters, threads, layers, forward_ms, backward_ms, latency, throughput, load, cores)


def _layer_times(model, x, iters: int, kinds: dict[str, str]) -> tuple[list[LayerTime], float, float]:
    """Average forward and backward milliseconds per leaf module, and of the whole passes."""

    leaves = [(name, module) for name, module in model.named_modules() if not any(module.children())]
    forward: dict[str, float] = defaultdict(float)
    backward: dict[str, float] = defaultdict(float)
    handles = []
    for name, module in leaves:
        if getattr(module, "inplace", False):
            module.inplace = False  # backward hooks cannot watch a tensor that is overwritten in place
        handles += _hooks(module, name, forward, backward)
    # The input takes part in autograd, so that the first layer's backward pass is timed like the others.
    x.requires_grad_(True)
    model.train()
    forward_total = backward_total = 0.0
    try:
        for i in range(WARMUP + iters):
            if i == WARMUP:
                forward.clear()
                backward.clear()
                forward_total = backward_total = 0.0
            start = time.perf_counter()
            out = model(x)
            middle = time.perf_counter()
            out.sum().backward()
            forward_total += middle - start
            backward_total += time.perf_counter() - middle
            model.zero_grad(set_to_none=True)
            x.grad = None
    finally:
        for handle in handles:
            handle.remove()
    ms = 1000 / iters  # seconds summed over iterations -> milliseconds per iteration
    rows = [
        LayerTime(name, kinds.get(name, type(module).__name__), forward[name] * ms, backward[name] * ms)
        for name, module in leaves
        if name in forward
    ]
    return rows, forward_total * ms, backward_total * ms


def _hooks(module, name: str, forward: dict[str, float], backward: dict[str, float]) -> list:
    started: dict[str, float] = {}

    def before_forward(_module, _args):
        started["forward"] = time.perf_counter()

    def after_forward(_module, _args, _out):
        forward[name] += time.perf_counter() - started["forward"]

    def before_backward(_module, _grad_out):
        started["backward"] = time.perf_counter()

    def after_backward(_module, _grad_in, _grad_out):
        backward[name] += time.perf_counter() - started["backward"]

    return [
        module.register_forward_pre_hook(before_forward),
        module.register_forward_hook(after_forward),
        module.register_full_backward_pre_hook(before_backward),
        module.register_full_backward_hook(after_backward),
    ]


def _session(path: Path, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads  # as many as torch uses, for a fair race
    options.inter_op_num_threads = 1  # torch eager runs one operator at a time too
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _speed(model, session, shape: tuple[int, ...], iters: int) -> Speed:
    import torch

    x = torch.randn(*shape)
    feed = {session.get_inputs()[0].name: x.numpy()}
    with torch.inference_mode():
        torch_ms = _median_ms(lambda: model(x), iters)
    return Speed(shape[0], torch_ms, _median_ms(lambda: session.run(None, feed), iters))


def _median_ms(call, iters: int) -> float:
    """Median milliseconds of `call`, after a warm-up, over at least `iters` calls and MIN_SECONDS."""
    for _ in range(WARMUP):
        call()
    times: list[float] = []
    began = time.perf_counter()
    while len(times) < iters or time.perf_counter() - began < MIN_SECONDS:
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    times.sort()
    return times[len(times) // 2] * 1000


# --- drawing -------------------------------------------------------------------------


def tables(bench: Bench) -> list:
    """Rich renderables: the per-layer table, the whole-network table, and a reminder if the machine was busy.

    The warning itself comes before measuring (`busy_warning`); the reminder keeps it beside the figures.
    """
    drawn = [_layer_table(bench), _whole_table(bench)]
    if bench.busy:
        drawn.append(f"note: measured under a load average of {bench.load:.2f} on {bench.cores} cores: these timings are not reliable")
    return drawn


def _layer_table(bench: Bench):
    from rich.table import Table

    table = Table(
        title=f"{bench.network}: torch eager, training mode, batch {bench.batch}, mean of {bench.iters} iterations",
        title_justify="left",
    )
    for header in ("layer", "kind", "forward ms", "backward ms"):
        table.add_column(header, justify="left" if header in ("layer", "kind") else "right")
    for row in bench.layers:
        table.add_row(row.name, row.kind, f"{row.forward_ms:.3f}", f"{row.backward_ms:.3f}")
    other_forward = bench.forward_ms - sum(r.forward_ms for r in bench.layers)
    other_backward = bench.backward_ms - sum(r.backward_ms for r in bench.layers)
    table.add_section()
    table.add_row("outside layers", "adds, concats, hooks", f"{other_forward:.3f}", f"{other_backward:.3f}")
    table.add_row("total", "", f"{bench.forward_ms:.3f}", f"{bench.backward_ms:.3f}", style="bold")
    return table


def _whole_table(bench: Bench):
    from rich.table import Table

    table = Table(title=f"{bench.network}: whole network, inference on the CPU", title_justify="left")
    threads = f"{bench.threads} thread{'s' if bench.threads != 1 else ''}"  # the same count pinned for both: a fair race
    for header in ("", f"torch eager, {threads}", f"onnxruntime, {threads}", "onnxruntime speed-up"):
        table.add_column(header, justify="right" if header else "left")
    lat, thr = bench.latency, bench.throughput
    table.add_row("latency, batch 1", f"{lat.torch_ms:.3f} ms", f"{lat.onnxruntime_ms:.3f} ms", f"{lat.speedup:.2f}×")
    table.add_row(
        f"throughput, batch {thr.batch}",
        f"{thr.per_second(thr.torch_ms):,.0f} /s",
        f"{thr.per_second(thr.onnxruntime_ms):,.0f} /s",
        f"{thr.speedup:.2f}×",
    )
    return table
