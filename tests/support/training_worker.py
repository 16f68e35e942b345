"""Runs training configurations in a fresh process: ``python tests/support/training_worker.py JSON``.

Used by tests that kill a run with SIGKILL or launch it with torchrun. JSON is a list of
``{"config": {...TrainConfig fields...}, "resume": bool}``, run one after the other. Under
torchrun the process group is joined once for all of them (re-joining the same rendezvous
store in one process is not supported by gloo).
"""

import json
import os
import sys

import torch.distributed as dist

from instcolor.training import TrainConfig, train

if __name__ == "__main__":
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if distributed:
        dist.init_process_group("gloo")
    for job in json.loads(sys.argv[1]):
        train(TrainConfig.from_dict(job["config"]), resume=job.get("resume", False))
    if distributed:
        dist.destroy_process_group()
