r"""Several processes, one result: data-parallel training and sharded certification on ``torch.distributed``.

Processes are started by ``torchrun`` (PyTorch's launcher), which gives each one ``RANK``, ``LOCAL_RANK``,
``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT``; :func:`init_from_env` reads them, puts the process on its own
device (``cuda:LOCAL_RANK``, or the CPU) and joins the process group (NCCL on CUDA, gloo on the CPU)::

    # one GPU: the same as `python -m course_lib.zoo train pgd_at`, bit for bit (one process: no process group)
    torchrun --standalone --nproc_per_node=1 -m course_lib.zoo train pgd_at
    # eight GPUs of one machine
    torchrun --standalone --nproc_per_node=8 -m course_lib.zoo train pgd_at
    # two machines of eight GPUs: the same command on both; HOST is the first machine's name or address,
    # JOB any word both commands share (torchrun's c10d rendezvous on HOST:29500 assigns the ranks)
    torchrun --nnodes=2 --nproc_per_node=8 --rdzv_backend=c10d --rdzv_endpoint=HOST:29500 --rdzv_id=JOB \
        -m course_lib.zoo train pgd_at
    # certification split over the processes (any of the launches above)
    torchrun --standalone --nproc_per_node=8 -m course_lib.zoo certify gaussian_0.25 --sigma 0.25 --samples 100000
    # trying it without GPUs: two CPU processes (gloo)
    COURSE_DEVICE=cpu torchrun --standalone --nproc_per_node=2 -m course_lib.zoo train tiny_pgd_at

Why the result is the single-process one. Training with ``W`` processes cuts each global batch of ``B`` examples
(the very batches one process would draw) into ``W`` slices of ``b = B / W``. Rank ``r`` computes the mean loss
``L_r`` of its slice; DistributedDataParallel all-reduces the gradients and divides by ``W``, so every rank applies

    (1/W) sum_r grad L_r = (1/W) sum_r (1/b) sum_{i in slice r} grad l_i = (1/B) sum_i grad l_i,

the gradient of the global batch's mean loss: the same step as one process, up to the order of float additions.
Certification is embarrassingly parallel: CERTIFY of one image never looks at another, so each rank certifies
its :func:`shard` of the images with noise seeded per image (:func:`derived_seed`) and a sum of the count arrays
(all-reduce) puts every image's counts on every rank.

Without ``torchrun`` (or with one process) nothing here starts a process group and every helper is the identity
(rank 0 of 1), so single-process code runs unchanged.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from .device import DEVICE_ENV, get_device

TORCHRUN_VARIABLES = ("RANK", "LOCAL_RANK", "WORLD_SIZE")


def launched() -> bool:
    """True if this process was started by ``torchrun`` (its environment variables are set)."""
    return all(v in os.environ for v in TORCHRUN_VARIABLES)


def is_initialized() -> bool:
    """True if a process group is running (of any size)."""
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """This process's rank in ``0 .. world_size() - 1`` (0 without a process group)."""
    return dist.get_rank() if is_initialized() else 0


def world_size() -> int:
    """The number of processes of the group (1 without a process group)."""
    return dist.get_world_size() if is_initialized() else 1


def is_main() -> bool:
    """True on rank 0, the one process that writes files and prints (always True in a single process)."""
    return rank() == 0


def init_from_env() -> torch.device:
    """Join the process group that ``torchrun`` describes in the environment; return this process's device.

    The device is :func:`course_lib.device.get_device`'s choice, with CUDA pinned to ``cuda:LOCAL_RANK`` (one GPU
    per process; an explicit ``COURSE_DEVICE=cuda:k`` is kept) and written back to ``COURSE_DEVICE``, so that all the
    library's ``get_device()`` calls in this process agree. Backend: NCCL on CUDA, gloo on the CPU (MPS has no
    backend). A group is started only for two or more processes and only once (calling again is harmless).
    SIGTERM keeps its default action: when one rank fails, torchrun stops the others at once, even one blocked in a
    collective (its file lock goes with the process; a cache write in flight leaves at most a ``*.tmp`` file, never
    read, and rank 0 writes only after every rank has finished).
    """
    device = get_device()
    if not launched():
        return device
    local_rank, size = int(os.environ["LOCAL_RANK"]), int(os.environ["WORLD_SIZE"])
    if device.type == "cuda":
        if device.index is None:
            device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        os.environ[DEVICE_ENV] = str(device)
    if size > 1 and not is_initialized():
        if device.type not in ("cuda", "cpu"):
            raise ValueError(f"distributed runs need CUDA (NCCL) or the CPU (gloo), not {device}; "
                             f"set {DEVICE_ENV}=cpu")
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


def teardown() -> None:
    """Leave the process group (a no-op without one)."""
    if is_initialized():
        dist.destroy_process_group()


def _comm_device() -> torch.device:
    """Where collective tensors must live: the current GPU for NCCL, the CPU for gloo."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def barrier() -> None:
    """Wait until every rank arrives (a no-op without a process group). If a rank has died, this raises."""
    if not is_initialized():
        return
    if dist.get_backend() == "nccl":
        dist.barrier(device_ids=[torch.cuda.current_device()])
    else:
        dist.barrier()


def all_reduce_sum(values: Any) -> torch.Tensor:
    """The element-wise sum over ranks of ``values`` (a number, a list or a tensor), as a tensor on the device of
    ``values``. Integer tensors add exactly, whatever the order in which ranks are added."""
    tensor = torch.as_tensor(values)
    if not is_initialized():
        return tensor.clone()
    buffer = tensor.to(_comm_device(), copy=True)
    dist.all_reduce(buffer, op=dist.ReduceOp.SUM)
    return buffer.to(tensor.device)


def all_reduce_mean(values: Any) -> torch.Tensor:
    """The element-wise mean over ranks of ``values`` (floating point): ``all_reduce_sum(values) / world_size()``."""
    return all_reduce_sum(torch.as_tensor(values, dtype=torch.float64)) / world_size()


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` (any picklable object) on every rank; ``obj`` itself without a process group."""
    if not is_initialized():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src, device=_comm_device())
    return box[0]


def broadcast_module(module: nn.Module, src: int = 0, buffers_only: bool = False) -> None:
    """Copy rank ``src``'s parameters and buffers (only buffers with ``buffers_only``) into ``module`` on every rank,
    in place (the modules must have the same architecture). Afterwards every rank holds the same bytes."""
    if not is_initialized():
        return
    tensors = list(module.buffers()) + ([] if buffers_only else list(module.parameters()))
    with torch.no_grad():
        for tensor in tensors:
            buffer = tensor.detach().to(_comm_device(), copy=True).contiguous()
            dist.broadcast(buffer, src=src)
            tensor.copy_(buffer)


def shard(n: int, rank_: int | None = None, world: int | None = None) -> range:
    """The items ``0 .. n - 1`` that rank ``rank_`` (default: this process) handles among ``world`` ranks: a
    contiguous block, the blocks of consecutive ranks adjacent and their sizes ``floor(n / W)`` or ``ceil(n / W)``.
    Without a process group: ``range(n)``."""
    r = rank() if rank_ is None else int(rank_)
    w = world_size() if world is None else int(world)
    if not 0 <= r < w:
        raise ValueError(f"rank {r} is not in 0..{w - 1}")
    return range(r * n // w, (r + 1) * n // w)


def split_sizes(m: int, world: int) -> list[int]:
    """Sizes of the ``world`` contiguous slices :func:`shard` cuts ``m`` items into (they sum to ``m``)."""
    return [len(shard(m, r, world)) for r in range(world)]


def local_batch_size(batch_size: int, n: int, world: int) -> int:
    """The per-rank batch ``batch_size / world`` of data-parallel training on ``n`` examples, or a ValueError:
    the global batch must split evenly, and the last, shorter batch (``n mod batch_size`` examples) must still give
    every rank at least one example (DDP needs every rank to take every step)."""
    if batch_size % world:
        raise ValueError(f"the batch size {batch_size} is not divisible by the {world} processes; choose a batch size "
                         f"that is a multiple of {world} (the global batch stays the recipe's)")
    last = n % batch_size if n >= batch_size else n
    if 0 < last < world:
        raise ValueError(f"the last batch of {last} of the {n} examples cannot give each of the {world} processes an "
                         f"example; change the batch size or the number of processes")
    return batch_size // world


def derived_seed(seed: int, index: int) -> int:
    """The seed of stream ``index`` (an image, a rank) of a computation seeded with ``seed``, in ``[0, 2^32)``.

    ``seed * 0x9E3779B9 + index`` modulo 2^32, scrambled by MurmurHash3's 32-bit finalizer. Both steps are
    bijections of the index modulo 2^32, so distinct streams of one computation never share a seed (torch's CPU
    generator keeps only the low 32 bits of a seed, hence 32 bits here), and neighbouring streams do not start from
    neighbouring seeds.
    """
    h = (int(seed) * 0x9E3779B9 + int(index)) & 0xFFFFFFFF
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & 0xFFFFFFFF
    return h ^ (h >> 16)
