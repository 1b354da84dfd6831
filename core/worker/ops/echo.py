"""``echo``: the Image input back after some progress steps; a cheap, cancellable op for checking
the add-on's pipeline end to end."""

from __future__ import annotations

import time
from dataclasses import dataclass

from ...contract import Input, OpSpec, Output, check_range, param
from ...pipelines import Result
from ..protocol import Job


@dataclass(frozen=True)
class EchoParams:
    steps: int = param(1, help="progress steps, 1 to 10000")
    seconds: float = param(0.0, unit="s", help="pause per step, 0 to 60")

    def __post_init__(self) -> None:
        check_range("steps", self.steps, 1, 10000)
        check_range("seconds", self.seconds, 0.0, 60.0)


SPEC = OpSpec(name="echo", title="Echo", params_type=EchoParams,
              inputs=(Input("image", "Image", "color"),), outputs=(Output("image", "Image", "color"),))


def run(job: Job, params: EchoParams) -> Result:
    image = job.input("image")
    for k in range(params.steps):
        time.sleep(params.seconds)
        job.progress(k + 1, params.steps)
    return Result({"image": image})
