"""Checks that several parameter dataclasses share (devices, sensors), each written once."""

from __future__ import annotations

import re

from ..contract import check_range
from ..errors import check

DEVICE_NAME = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
SENSOR_FITS = ("AUTO", "HORIZONTAL", "VERTICAL")


def check_device(name: str) -> None:
    check(bool(DEVICE_NAME.match(name)), f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps")


def check_sensor(focal_length_mm: float | None, sensor_width_mm: float, sensor_height_mm: float | None) -> None:
    check_range("the focal length (mm)", focal_length_mm, 0.0, 10000.0, low_open=True)
    check_range("the sensor width (mm)", sensor_width_mm, 0.0, 1000.0, low_open=True)
    check_range("the sensor height (mm)", sensor_height_mm, 0.0, 1000.0, low_open=True)
