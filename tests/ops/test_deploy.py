"""The deployable stack: the compose file validates and wires every part the production set-up needs."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

DOCKER = Path(__file__).resolve().parents[2] / "docker"


def test_compose_file_validates_and_has_the_whole_stack():
    tool = shutil.which("docker-compose")
    if tool is None:
        (pytest.fail if os.environ.get("CI") else pytest.skip)("docker-compose (Debian package) is not installed")
    env = {**os.environ, "HUB_SIGNING_KEY": "test-key"}
    check = subprocess.run([tool, "-f", str(DOCKER / "compose.yaml"), "config", "-q"], env=env,
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    services = subprocess.run([tool, "-f", str(DOCKER / "compose.yaml"), "config", "--services"], env=env,
                              capture_output=True, text=True).stdout.split()
    assert {"postgres", "redis", "migrate", "api", "worker", "beat"} <= set(services)
    missing_key = subprocess.run([tool, "-f", str(DOCKER / "compose.yaml"), "config", "-q"],
                                 env={k: v for k, v in env.items() if k != "HUB_SIGNING_KEY"},
                                 capture_output=True, text=True)
    assert missing_key.returncode != 0  # production refuses to start without a signing key


def test_dockerfile_runs_the_hub_as_a_non_root_user():
    text = (DOCKER / "Dockerfile").read_text()
    assert "USER hub" in text and 'CMD ["hub", "serve"' in text and "HEALTHCHECK" in text
