"""One render across several GPUs of one machine: diffusers' context parallelism, run in lockstep.

`avatarbot worker --gpus 0,1,2,3` keeps Celery's model (one pool process takes one job at a time)
and makes that process rank 0 of a process group: at its first job it starts one follower process
per other GPU (`python -m avatarbot.avatar.hunyuan.parallel`, torchrun-style environment), every
rank loads the same pipeline with `context_parallel` on, and then for each render:

1. rank 0 broadcasts the call's arguments (photo, audio, prompt, seed, ...);
2. every rank runs the same pipeline call: the same seed gives the same noise, so encoders, VAE
   and scheduler agree without talking, and inside each transformer forward diffusers' context
   parallelism (the model's `_cp_plan`) gives each rank a share of the token sequence, with
   Ulysses all-to-all or ring attention between them;
3. after every step rank 0 broadcasts whether to go on, so a cancelled render stops on all ranks
   at the same step and the group stays in step for the next job. Rank 0's frames are the clip.

The scheme (diffusers' `ContextParallelConfig`, its hooks, its attention collectives) is the
library's; what is ours is only the lockstep: diffusers expects a script that every rank runs
from the top (torchrun), while a Celery worker receives jobs on one process only.
Celery still spreads renders across machines and across workers.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib
import logging
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)

SCHEMES = ("ulysses", "ring")
FOLLOWER_MODULE = "avatarbot.avatar.hunyuan.parallel"
DEFAULT_FACTORY = f"{FOLLOWER_MODULE}:pipeline_from_settings"
GROUP_TIMEOUT = datetime.timedelta(minutes=30)


class RenderStopped(Exception):
    """A follower's render stopped because rank 0's did (cancelled, or failed between steps)."""


def enable_context_parallel(transformer, scheme: str) -> None:
    """Split each forward of `transformer` over the initialised process group (diffusers'
    `enable_parallelism` with the model's `_cp_plan`). "Anything" sharding: the text rows and
    the token count need not divide by the number of GPUs."""
    from diffusers import ContextParallelConfig

    if not dist.is_initialized():
        raise RuntimeError("context_parallel needs a process group (avatarbot worker --gpus)")
    world = dist.get_world_size()
    if scheme == "ulysses":
        heads = transformer.config.num_attention_heads
        if heads % world:
            raise ValueError(f"Ulysses splits the {heads} attention heads; they do not divide by {world} GPUs")
        config = ContextParallelConfig(ulysses_degree=world, ulysses_anything=True)
    elif scheme == "ring":  # the kernel was checked with the other modes (speed.check_modes)
        config = ContextParallelConfig(ring_degree=world, ring_anything=True)
    else:
        raise ValueError(f"context_parallel must be one of {SCHEMES}, not {scheme!r}")
    with _cpu_counts_as_one_device():
        transformer.enable_parallelism(config=config)
    log.info("context parallel: %s over %d ranks (this is rank %d)", scheme, world, dist.get_rank())


@contextlib.contextmanager
def _cpu_counts_as_one_device():
    """diffusers places rank r on device r % torch.accelerator.device_count(), which divides by
    zero on a machine with no accelerator (the gloo test on CPU); there the CPU is one device."""
    if torch.accelerator.device_count() > 0:
        yield
        return
    original = torch.accelerator.device_count
    torch.accelerator.device_count = lambda: 1
    try:
        yield
    finally:
        torch.accelerator.device_count = original


# --- the process group ------------------------------------------------------------------------
@dataclass
class Group:
    rank: int
    world: int
    device: torch.device
    followers: list[subprocess.Popen]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_group(world: int, factory_arg: str, factory: str = DEFAULT_FACTORY, backend: str | None = None) -> Group:
    """Make this process rank 0 of `world` ranks on this machine: start the followers (each
    builds its pipeline with `factory(rank, device, factory_arg)`) and join the group. GPUs: rank r uses
    cuda:r of those visible (the worker sets CUDA_VISIBLE_DEVICES from --gpus)."""
    cuda = torch.cuda.is_available()
    backend = backend or ("nccl" if cuda else "gloo")
    address = f"tcp://127.0.0.1:{free_port()}"
    followers = [
        subprocess.Popen(
            [sys.executable, "-m", FOLLOWER_MODULE, "--rank", str(rank), "--world", str(world)]
            + ["--init", address, "--backend", backend, "--factory", factory, "--factory-arg", factory_arg],
            env={**os.environ, "AVATARBOT_PARENT_PID": str(os.getpid())},
        )
        for rank in range(1, world)
    ]
    device = torch.device("cuda", 0) if cuda else torch.device("cpu")
    _join(0, world, address, backend, device)
    return Group(0, world, device, followers)


def _join(rank: int, world: int, address: str, backend: str, device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.set_device(device)
    # Long enough for every rank to load ~80 GB of weights before the first collective; a render
    # stuck for longer is stopped by Celery's time limit first.
    dist.init_process_group(backend, init_method=address, rank=rank, world_size=world, timeout=GROUP_TIMEOUT)


def stop_group(group: Group) -> None:
    """Tell the followers to exit, then leave the group."""
    dist.broadcast_object_list([None], src=0, device=_comm_device(group.device))
    for process in group.followers:
        process.wait(timeout=60)
    dist.destroy_process_group()


def _comm_device(device: torch.device) -> torch.device:
    return device if dist.get_backend() == "nccl" else torch.device("cpu")


# --- the lockstep -----------------------------------------------------------------------------
class ParallelPipeline:
    """Rank 0's face of the pipeline: same interface, every call run by all ranks together."""

    def __init__(self, pipeline, group: Group):
        self.pipeline, self.group = pipeline, group
        self._comm = _comm_device(group.device)
        self.broken: str | None = None

    def __getattr__(self, name):  # face_detector, render_pixels, face_box, ...
        return getattr(self.pipeline, name)

    def __call__(self, callback: Callable[[int, int], None] | None = None, **kwargs):
        if self.broken:
            raise RuntimeError(f"the multi-GPU render group is down ({self.broken}); restart the worker")
        dist.broadcast_object_list([kwargs], src=0, device=self._comm)
        agreed_stop = []

        def agreed(done: int, total: int) -> None:
            error = None
            if callback is not None:
                try:
                    callback(done, total)
                except BaseException as exc:  # cancellation: stop every rank at this step
                    error = exc
            dist.broadcast_object_list([error is None], src=0, device=self._comm)
            if error is not None:
                agreed_stop.append(error)
                raise error

        try:
            return self.pipeline(callback=agreed, **kwargs)
        except BaseException as exc:
            if not agreed_stop:
                # Failed inside a step (out of memory, say): the followers wait in a collective
                # that will never come. Stop them; this worker renders no more until restarted.
                self.broken = f"{type(exc).__name__} during a render"
                for process in self.group.followers:
                    process.kill()
            raise


def follow(pipeline, device: torch.device) -> None:
    """A follower's life: run each render rank 0 announces, until it announces none."""
    comm = _comm_device(device)
    while True:
        message = [None]
        dist.broadcast_object_list(message, src=0, device=comm)
        kwargs = message[0]
        if kwargs is None:
            return

        def step(done: int, total: int) -> None:
            go_on = [None]
            dist.broadcast_object_list(go_on, src=0, device=comm)
            if not go_on[0]:
                raise RenderStopped(f"rank 0 stopped after step {done}")

        with contextlib.suppress(RenderStopped):
            pipeline(callback=step, **kwargs)


def pipeline_from_settings(rank: int, device: torch.device, hunyuan_json: str):
    """Each follower's pipeline in production: rank 0's `[hunyuan]` settings, context parallel on."""
    from avatarbot.avatar.hunyuan.engine import build_pipeline
    from avatarbot.settings import HunyuanSettings

    return build_pipeline(HunyuanSettings.model_validate_json(hunyuan_json), device, context_parallel=True)


def load_factory(spec: str) -> Callable:
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="a follower rank of a multi-GPU render worker")
    parser.add_argument("--rank", type=int, required=True)
    parser.add_argument("--world", type=int, required=True)
    parser.add_argument("--init", required=True, help="tcp://host:port of rank 0")
    parser.add_argument("--backend", default="nccl")
    parser.add_argument("--factory", default=DEFAULT_FACTORY, help="module:function(rank, device, arg) -> pipeline")
    parser.add_argument("--factory-arg", default="", help="the factory's third argument (the settings, as JSON)")
    args = parser.parse_args(argv)
    from avatarbot.tasks.redis_server import die_with_parent

    die_with_parent()  # a follower never outlives the worker process it serves
    if os.environ.get("AVATARBOT_PARENT_PID") not in (None, str(os.getppid())):
        return 1  # that worker died before we could ask to die with it
    logging.basicConfig(level=logging.INFO, format=f"rank {args.rank}: %(levelname)s %(name)s: %(message)s")
    device = torch.device("cuda", args.rank) if args.backend == "nccl" else torch.device("cpu")
    _join(args.rank, args.world, args.init, args.backend, device)
    pipeline = load_factory(args.factory)(args.rank, device, args.factory_arg)
    follow(pipeline, device)
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
