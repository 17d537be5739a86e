"""minigan.cpu: OpenBLAS's kernels are chosen for the CPU only where measured, only
before NumPy loads, and never over the user's own choice."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from minigan import cpu

ZEN4 = (  # the first lines of /proc/cpuinfo on this project's machine, trimmed
    "vendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 17\n"
    "flags\t\t: fpu sse avx2 avx512f avx512bw\n"
)


@pytest.mark.parametrize(
    "cpuinfo, expected",
    [
        (ZEN4, "Haswell"),
        (ZEN4 + "\n" + ZEN4.replace("25", "26"), "Haswell"),  # the first processor decides
        (ZEN4.replace("avx512f avx512bw", ""), None),  # Zen 3: OpenBLAS already uses AVX2
        (ZEN4.replace("25", "26"), None),  # Zen 5: full-width AVX-512, not measured
        (ZEN4.replace("AuthenticAMD", "GenuineIntel").replace("25", "6"), None),
        ("", None),
    ],
)
def test_the_preferred_core_is_haswell_on_zen4_only(cpuinfo, expected):
    assert cpu.preferred_openblas_core(cpuinfo) == expected


def test_nothing_is_changed_once_numpy_is_loaded_or_the_user_has_chosen(monkeypatch):
    assert "numpy" in sys.modules  # this test process
    monkeypatch.delenv("OPENBLAS_CORETYPE", raising=False)
    assert cpu.choose_openblas_kernels() is None
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Sandybridge")
    monkeypatch.delitem(sys.modules, "numpy")
    assert cpu.choose_openblas_kernels() is None
    assert os.environ["OPENBLAS_CORETYPE"] == "Sandybridge"


def _kernels(first, env):
    """The BLAS kernels NumPy loads after running ``first`` in a fresh process."""
    code = (
        f"{first}\nimport numpy; from threadpoolctl import threadpool_info; "
        "print([i.get('architecture') for i in threadpool_info() if i['user_api'] == 'blas'])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True,
        cwd=Path(__file__).resolve().parents[1],
    )  # fmt: skip
    return out.stdout.strip().splitlines()[-1]


# Each entry point asked only for --help: as ``python -m`` runs it (as __main__), and
# as its console script (pyproject's [project.scripts]) calls it.
ENTRY_POINT = (
    "import runpy, sys; sys.argv = ['{0}', '--help']\n"
    "try:\n    runpy.run_module('{0}', run_name='__main__')\nexcept SystemExit:\n    pass"
)
CONSOLE_SCRIPT = (
    "import sys; sys.argv = ['{0}', '--help']\n"
    "try:\n    from minigan import cpu; cpu.{1}()\nexcept SystemExit:\n    pass"
)


@pytest.mark.parametrize(
    "module", ["minigan.train", "minigan.sample", "script train", "script score"]
)
def test_the_entry_points_choose_the_kernels_and_import_minigan_does_not(module):
    if module.startswith("script"):
        script = module.split()[1]
        entry = CONSOLE_SCRIPT.format(f"minigan-{script}", script)
    else:
        entry = ENTRY_POINT.format(module)
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    own_pick = _kernels("import sys", env)
    if own_pick in ("[]", "[None]"):
        pytest.skip("NumPy's BLAS here is not an OpenBLAS that reports its kernels")
    chosen = cpu.preferred_openblas_core_here()
    assert _kernels(entry, env) == (f"[{chosen!r}]" if chosen else own_pick)
    assert _kernels("import minigan, minigan.nn, minigan.train", env) == own_pick
    theirs = {**env, "OPENBLAS_CORETYPE": "Sandybridge"}
    assert _kernels(entry, theirs) == "['Sandybridge']"


def test_import_minigan_leaves_the_environment_alone():
    code = (
        "import os; before = dict(os.environ); import minigan, minigan.nn, minigan.train; "
        "print(dict(os.environ) == before)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"


def test_every_console_script_starts_in_cpu():
    import tomllib

    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    scripts = tomllib.loads(pyproject.read_text())["project"]["scripts"]
    assert scripts and all(target.startswith("minigan.cpu:") for target in scripts.values())
    for target in scripts.values():
        assert callable(getattr(cpu, target.split(":")[1]))
