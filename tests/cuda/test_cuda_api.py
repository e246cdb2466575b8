"""convcore.cuda and device= as the installed build sees them: without the CUDA backend, without a driver or a GPU,
everything says which is missing; device and precision arguments are checked before anything runs."""

import json

import numpy as np
import pytest

import convcore
import convcore.cuda
import convcore.functional as F
from convcore.cli import main


def _fn(x):
    return F.relu(x)


def test_show_config_reports_the_gpu_backend(capsys):
    cfg = convcore.show_config()
    printed = capsys.readouterr().out
    gpu = cfg["cuda"]
    assert "CUDA backend:" in printed
    assert gpu["built"] == (convcore.cuda._module is not None)
    assert gpu["available"] == convcore.cuda.is_available()
    if gpu["available"]:
        assert gpu["devices"] and all(d["name"] and len(d["compute_capability"]) == 2 for d in gpu["devices"])
        assert gpu["driver_version"]
    else:
        assert gpu["reason"] == convcore.cuda.unavailable_reason()
        assert (gpu["reason"] in printed) if gpu["built"] else "CUDA backend:   not built" in printed
    json.dumps(cfg)  # `convcore info --json`


@pytest.mark.skipif(convcore.cuda.is_available(), reason="a GPU is usable here")
def test_without_a_gpu_every_entry_point_says_why():
    reason = convcore.cuda.unavailable_reason()
    if convcore.cuda._module is None:
        assert "no CUDA backend" in reason
    else:
        assert reason.startswith("no GPU: ")
    assert convcore.cuda.device_count() == 0 and not convcore.cuda.is_available()
    with pytest.raises(RuntimeError, match="device='cuda': " + reason.split(" (")[0][:40]):
        convcore.compile(_fn, (1, 3, 4, 4), device="cuda")
    with pytest.raises(RuntimeError, match="device='cuda'"):
        convcore.cuda.to_device(np.zeros(3, np.float32))
    with pytest.raises(RuntimeError, match="device='cuda'"):
        convcore.cuda.get_device_info()


@pytest.mark.skipif(convcore.cuda.is_available(), reason="a GPU is usable here")
@pytest.mark.parametrize("command", [["bench", "lenet5", "--batch", "1", "--min-time", "0"],
                                     ["classify", "--model", "lenet5"]])
def test_commands_with_device_cuda_fail_in_one_line(command, capsys):
    assert main(command + ["--device", "cuda"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("convcore: error: device='cuda': ") and err.count("\n") == 1


def test_device_and_precision_arguments():
    assert convcore.cuda.parse_device("cpu") is None and convcore.cuda.parse_device("cuda") == 0
    assert convcore.cuda.parse_device("cuda:3") == 3 and convcore.cuda.parse_device(1) == 1
    for bad in ("gpu", "cuda:x", -1, True, "cuda:"):
        if bad == "cuda:":
            assert convcore.cuda.parse_device(bad) == 0
            continue
        with pytest.raises(ValueError, match="device"):
            convcore.cuda.parse_device(bad)
    with pytest.raises(ValueError, match="device"):
        convcore.compile(_fn, (1, 3, 4, 4), device="tpu")
    with pytest.raises(ValueError, match="precision"):
        convcore.compile(_fn, (1, 3, 4, 4), device="cuda", precision="fp16")
    with pytest.raises(ValueError, match="precision: expected one of .* on the CPU .*tf32 is for device"):
        convcore.compile(_fn, (1, 3, 4, 4), precision="tf32")
    with pytest.raises(ValueError, match="winograd"):
        convcore.compile(_fn, (1, 3, 4, 4), device="cuda", winograd=True)
    assert main(["bench", "lenet5", "--device", "tpu"]) == 2
    assert main(["bench", "lenet5", "--precision", "tf32"]) == 2  # GPU-only (bf16 runs on CPUs that have it)
