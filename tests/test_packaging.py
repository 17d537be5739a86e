"""What ``pip install minigan`` gets: ``python -m build`` makes a wheel and an sdist that
carry the code, the bundled digits and judges, the licences and the console scripts;
and (with MINIGAN_PACKAGING=install, as ``.ci/run`` sets it) both install into a fresh
virtual environment, where ``minigan-train`` and ``minigan-score`` run.

The build runs without isolation (``--no-isolation``: the test environment's own
setuptools, which the ``test`` extra pins to >= 77, the first to read the licence as an
SPDX expression), on a copy of the files the package is built from, so the working tree
gets no build/ or egg-info from it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ["minigan", "pyproject.toml", "README.md", "LICENSE"]
ASSETS = ["NOTICE", "judge_fashion-mnist.npz", "judge_mnist.npz", "mnist_5k.npz"]
SCRIPTS = ["minigan-train", "minigan-sample", "minigan-score", "minigan-export"]


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    """(wheel, sdist) built from a copy of the package's sources."""
    pytest.importorskip("build", reason="python -m build needs the build package (.[test])")
    source = tmp_path_factory.mktemp("source")
    for name in SOURCES:
        if (ROOT / name).is_dir():
            ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
            shutil.copytree(ROOT / name, source / name, ignore=ignore)
        else:
            shutil.copy(ROOT / name, source / name)
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(source)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "License classifiers are deprecated" not in done.stdout + done.stderr
    assert "`project.license` as a TOML table is deprecated" not in done.stdout + done.stderr
    [wheel], [sdist] = out.glob("*.whl"), out.glob("*.tar.gz")
    return wheel, sdist


def test_the_wheel_carries_the_data_the_licences_and_the_scripts(dist):
    wheel, _ = dist
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        info = next(n for n in names if n.endswith(".dist-info/METADATA"))
        metadata = Parser().parsestr(z.read(info).decode())
        entry_points = z.read(info.replace("METADATA", "entry_points.txt")).decode()
    for asset in ASSETS:
        assert f"minigan/assets/{asset}" in names
    assert {"minigan/__init__.py", "minigan/models/dcgan.py", "minigan/resources.py"} <= names
    assert metadata["License-Expression"] == "MIT"
    assert sorted(metadata.get_all("License-File")) == ["LICENSE", "minigan/assets/NOTICE"]
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    for script in SCRIPTS:
        assert f"{script} = minigan.cpu:" in entry_points


def test_the_sdist_carries_the_data_and_the_licences(dist):
    _, sdist = dist
    with tarfile.open(sdist) as tar:
        names = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
    for asset in ASSETS:
        assert f"minigan/assets/{asset}" in names
    assert {"LICENSE", "pyproject.toml", "README.md", "minigan/train.py"} <= names


@pytest.mark.skipif(
    os.environ.get("MINIGAN_PACKAGING") != "install",
    reason="installs into a fresh venv from PyPI (about a minute): "
    "MINIGAN_PACKAGING=install, as .ci/run sets it",
)
def test_the_wheel_and_the_sdist_install_and_run_in_a_fresh_venv(dist, tmp_path):
    """The wheel with its dependencies into a new venv, then the sdist over it (built
    from source by pip): each time minigan-train trains 2 steps on the bundled digits
    and minigan-score scores the checkpoint, from outside the source tree."""
    wheel, sdist = dist
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    bin_dir = venv / "bin"
    env = {
        key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")
    }
    env["MPLCONFIGDIR"] = str(tmp_path / "mpl")
    for package, extra in ((wheel, []), (sdist, ["--force-reinstall", "--no-deps"])):
        pip = [str(bin_dir / "pip"), "install", "--quiet", *extra, str(package)]
        done = subprocess.run(pip, capture_output=True, text=True, env=env, timeout=900)
        assert done.returncode == 0, done.stderr[-3000:]
        run = tmp_path / f"run-{package.suffix}"
        commands = [
            [bin_dir / "minigan-train", "--max-steps", "2", "--backend", "numpy", "--out", run],
            [bin_dir / "minigan-score", "--checkpoint", run, "--n", "1000", "--backend", "numpy"],
        ]
        for command in commands:
            done = subprocess.run(list(map(str, command)), capture_output=True, text=True,
                                  env=env, cwd=tmp_path, timeout=600)  # fmt: skip
            assert done.returncode == 0, (package.name, command[0].name, done.stderr[-3000:])
        assert "Fréchet distance" in done.stdout
        where = [str(bin_dir / "python"), "-c", "import minigan; print(minigan.__file__)"]
        where = subprocess.run(where, capture_output=True, text=True, env=env, cwd=tmp_path)
        assert where.stdout.startswith(str(venv)), where.stdout  # the installed copy ran
