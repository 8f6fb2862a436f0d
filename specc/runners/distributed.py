"""One process or many: the device, the process group, and the torchrun launcher.

`torchrun --nproc-per-node N -m specc train ...` starts N copies of the
trainer with RANK, WORLD_SIZE, LOCAL_RANK and a rendezvous in the
environment. `start` joins them into one process group (NCCL between GPUs,
gloo between CPU processes); a single process needs no group at all, and
every collective below is then a no-op, so the trainer has one code path.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..errors import EXIT_FAILURE, EXIT_INTERRUPTED, UsageError


@dataclass
class Session:
    """This process's place among the training processes, and the device it trains on."""

    device: torch.device
    rank: int = 0
    world_size: int = 1
    local_world_size: int = 1

    @property
    def is_main(self) -> bool:
        """Rank 0 alone writes files and prints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """The sum of `tensor` over all processes, in place."""
        if self.distributed:
            dist.all_reduce(tensor)
        return tensor

    def sync_buffers(self, module: torch.nn.Module) -> None:
        """Rank 0's batchnorm statistics everywhere: each process's last batch updated its own."""
        if self.distributed:
            for buffer in module.buffers():
                dist.broadcast(buffer, 0)

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """The model as the training step calls it: DistributedDataParallel among several processes."""
        if not self.distributed:
            return model
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def close(self) -> None:
        if self.distributed and dist.is_initialized():
            dist.destroy_process_group()


def start(device: str) -> Session:
    """The session of this process: torchrun's environment if present, else one process alone."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world_size)))
    chosen = pick_device(device, local_rank, local_world)
    if chosen.type == "cuda":
        torch.cuda.set_device(chosen)
    else:
        # torchrun sets OMP_NUM_THREADS=1 for every worker; share the cores out instead.
        torch.set_num_threads(max(1, _usable_cores() // local_world))
    session = Session(chosen, int(os.environ.get("RANK", "0")), world_size, local_world)
    if session.distributed:
        backend = "nccl" if chosen.type == "cuda" else "gloo"
        dist.init_process_group(backend, device_id=chosen if chosen.type == "cuda" else None)
    return session


def pick_device(choice: str, local_rank: int = 0, local_world: int = 1) -> torch.device:
    """The device of local process `local_rank` of `local_world` on this machine.

    `auto` is a GPU where there is one for every process (NCCL refuses two processes on one GPU),
    else the CPU; asking for a device that is absent is an error, not a quiet fallback.
    """
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    has_mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if choice == "auto":
        choice = "cuda" if gpus >= local_world else "mps" if has_mps and local_world == 1 else "cpu"
    if choice == "cuda":
        if not gpus:
            raise UsageError("--device cuda: this machine has no CUDA GPU that torch can use", hint="use --device cpu (or auto)")
        if gpus < local_world:
            raise UsageError(
                f"--device cuda: {local_world} processes on this machine but {gpus} GPU{'s' if gpus > 1 else ''}; "
                "each process needs a GPU of its own",
                hint=f"use --nproc {gpus} (torchrun --nproc-per-node {gpus}), or --device cpu",
            )
        return torch.device("cuda", local_rank)
    if choice == "mps" and not has_mps:
        raise UsageError("--device mps: this machine has no Apple GPU that torch can use", hint="use --device cpu (or auto)")
    return torch.device(choice)


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def launch(nproc: int, args: list[str]) -> int:
    """Run `specc train ARGS` in `nproc` processes on this machine through torchrun; the exit code.

    torchrun runs in this process so that a failed worker ends with its own exit code (2 for a
    bad spec or data file) rather than torchrun's traceback: rank 0 has already said what went wrong.
    """
    if nproc < 1:
        raise UsageError(f"--nproc {nproc}: the number of processes must be at least 1")
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    _quiet_torchrun_logs()
    # Each worker's share of the cores; left unset, torchrun warns and gives every worker one thread.
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, _usable_cores() // nproc)))
    try:
        run(parse_args(["--standalone", f"--nproc-per-node={nproc}", "-m", "specc", "train", *args]))
    except ChildFailedError as err:
        _, failure = err.get_first_failure()
        return failure.exitcode if failure.exitcode > 0 else EXIT_FAILURE
    except SignalException:  # Ctrl-C or kill: torchrun stopped the workers, and rank 0 said how to resume
        return EXIT_INTERRUPTED
    return 0


def _quiet_torchrun_logs() -> None:
    # torchrun's agent reports a failed or interrupted worker in log lines of its own; the worker
    # has said what went wrong, in specc's words. Each of its loggers has its level set explicitly.
    for name, logger in list(logging.root.manager.loggerDict.items()):
        if name.startswith("torch.distributed") and isinstance(logger, logging.Logger):
            logger.setLevel(logging.CRITICAL)
