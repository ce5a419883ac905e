"""A picamera2 that is installed but does not import stops the daemon with the reason (exit 2).

On Raspberry Pi OS bookworm, apt's picamera2 imports apt's simplejpeg, built for numpy 1.x; in a venv with
numpy 2 that import fails ("numpy.dtype size changed"). Finding the module is not importing it: the
daemon must not start and report a camera that is merely "lost" for ever. Here a picamera2 package whose
import fails the same way is put first on the path of a real `proctord run`.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import REPO, daemon_config

NUMPY_ABI_ERROR = (
    "numpy.dtype size changed, may indicate binary incompatibility. Expected 96 from C header, got 88 from PyObject"
)
BROKEN_PACKAGES = {
    # what apt's simplejpeg (numpy 1.24) does under the venv's numpy 2
    "ValueError": f"raise ValueError({NUMPY_ABI_ERROR!r})\n",
    # a compiled helper picamera2 needs, missing from the venv and the system
    "ModuleNotFoundError": "import simplejpeg_not_installed\n",
}


@pytest.mark.parametrize("error", sorted(BROKEN_PACKAGES))
def test_a_picamera2_that_does_not_import_exits_2_with_the_reason(tmp_path, models_dir, error):
    broken = tmp_path / "site" / "picamera2"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text(BROKEN_PACKAGES[error])
    config = tmp_path / "proctord.toml"
    config.write_text(daemon_config(tmp_path, models_dir, camera={"kind": "picamera2", "path": "0"}))

    result = subprocess.run(
        [sys.executable, "-m", "daemon.cli", "run", "--config", str(config)],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "PYTHONPATH": str(tmp_path / "site")},
    )

    assert result.returncode == 2, result.stderr
    assert f'camera.kind = "picamera2": the picamera2 library does not import: {error}' in result.stderr
    assert (NUMPY_ABI_ERROR if error == "ValueError" else "simplejpeg_not_installed") in result.stderr
    assert "pip install simplejpeg" in result.stderr
