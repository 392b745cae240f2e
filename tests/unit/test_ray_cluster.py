"""Connecting to a Ray cluster: clear errors that name the param, addresses without credentials."""

from __future__ import annotations

import socket

import pytest

from stages.errors import ParamsError
from stages.ray_cluster import ClusterInfo, RayParams, ray_cluster, redact_address


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # free once the socket closes: nothing listens there


def test_an_unreachable_address_is_an_error_naming_the_param():
    params = RayParams(address=f"127.0.0.1:{_closed_port()}", num_workers=2)
    with pytest.raises(ParamsError, match=r"anonymize\.ray\.address: the Ray cluster at '127\.0\.0\.1:\d+' is unreachable"):
        with ray_cluster(params, param="anonymize.ray.address"):
            pass


@pytest.mark.parametrize(
    "address",
    [
        "headnode",  # no port
        "ray://headnode",  # Ray Client URL without its port
    ],
)
def test_a_malformed_address_is_an_error_naming_the_param(address):
    with pytest.raises(ParamsError, match=r"synthesize\.generation\.ray\.address: .* is not a Ray address"):
        with ray_cluster(RayParams(address=address, num_workers=1), param="synthesize.generation.ray.address"):
            pass


def test_credentials_never_reach_the_error_or_the_tags():
    address = f"ray://admin:s3cret@127.0.0.1:{_closed_port()}"
    with pytest.raises(ParamsError) as caught:
        with ray_cluster(RayParams(address=address, num_workers=1), param="anonymize.ray.address"):
            pass
    assert "s3cret" not in str(caught.value) and "admin" not in str(caught.value)
    assert redact_address(address).startswith("ray://127.0.0.1:")
    tags = ClusterInfo(address=redact_address(address), num_workers=4, started_here=False).tags()
    assert tags == {"engine": "ray", "ray.address": redact_address(address), "ray.num_workers": "4",
                    "ray.local_cluster": "false"}
