"""Offline, the main job fails fast: the CIFAR-10 message alone, before any job starts."""

import pytest

from .conftest import snakemake


@pytest.mark.slow
def test_unreachable_cifar10_stops_the_main_job_before_any_run(tmp_path):
    # a proxy on a closed port makes the download URL unreachable, as on a machine without network
    proxy = {"https_proxy": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9"}
    result = snakemake("--cores", "4", "--config", f"data_root={tmp_path}", env=proxy, timeout=300)
    assert result.returncode != 0
    assert "cifar-10-python.tar.gz is missing" in result.stderr and "No job was started." in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert "rule run:" not in result.stdout + result.stderr and "rule download_cifar10:" not in result.stderr
