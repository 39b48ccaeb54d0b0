"""The container image, without a container engine: the Dockerfile's install done by hand.

The module copies exactly what the Dockerfile's COPY lines name into an empty directory,
installs requirements.txt into a fresh virtualenv (as `pip install -r requirements.txt` does
in the image), and runs the Dockerfile's CMD from there with production settings: a folder
the Dockerfile forgets, or a runtime dependency missing from requirements.txt, fails here.
One difference from the image, for speed: the venv gets no pip of its own (this interpreter's
pip, a recent one, installs into it with --python).
In the PostgreSQL pass the app runs on PostgreSQL (DATABASE_URL=postgresql://...).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet

from tests import databases
from tests.conftest import free_port
from tests.processes import ServerDidNotStart, serve

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
EMAIL, OFFICE, PASSWORD = "drift@kontoret.no", "Kontoret AS", "et-langt-passord-123"


@dataclass
class Dockerfile:
    """The instructions this test acts on (no build stages, no ARG substitution)."""

    base: str = ""
    workdir: PurePosixPath = field(default_factory=lambda: PurePosixPath("/"))
    # (sources, destination): the destination absolute, a trailing "/" kept (it means a folder)
    copies: list[tuple[list[str], str]] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    user: str = ""
    volumes: list[str] = field(default_factory=list)
    expose: list[str] = field(default_factory=list)
    healthcheck: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)


def _args(rest: str) -> list[str]:
    return json.loads(rest) if rest.startswith("[") else shlex.split(rest)


def parse_dockerfile(text: str) -> Dockerfile:
    parsed = Dockerfile()
    logical = re.sub(
        r"\\\n",
        " ",
        "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")),
    )
    for line in logical.splitlines():
        if not line.strip():
            continue
        instruction, _, rest = line.strip().partition(" ")
        instruction, rest = instruction.upper(), rest.strip()
        if instruction == "FROM":
            parsed.base = rest
        elif instruction == "WORKDIR":
            parsed.workdir = parsed.workdir / rest
        elif instruction in ("COPY", "ADD"):
            assert instruction == "COPY", "ADD fetches and unpacks; the image uses COPY only"
            args = [a for a in _args(rest) if not a.startswith("--")]
            destination = args[-1]
            if not destination.startswith("/"):
                destination = f"{parsed.workdir}/{destination}"
            parsed.copies.append((args[:-1], destination))
        elif instruction == "RUN":
            parsed.runs.append(rest)
        elif instruction == "ENV":
            for pair in shlex.split(rest):
                name, _, value = pair.partition("=")
                parsed.env[name] = value
        elif instruction == "USER":
            parsed.user = rest
        elif instruction == "VOLUME":
            parsed.volumes += _args(rest)
        elif instruction == "EXPOSE":
            parsed.expose += rest.split()
        elif instruction == "HEALTHCHECK":
            parsed.healthcheck = json.loads(rest[rest.index("CMD") + 3 :].strip())
        elif instruction == "CMD":
            parsed.cmd = json.loads(rest)
    return parsed


def copy_into(image_root: Path, dockerfile: Dockerfile) -> Path:
    """Docker's COPY for local paths: a folder's contents go into the destination; a file goes
    into it when it is a folder (a trailing "/", several sources, or one that exists)."""
    workdir = image_root / dockerfile.workdir.relative_to("/")
    workdir.mkdir(parents=True, exist_ok=True)
    for sources, destination in dockerfile.copies:
        target = image_root / PurePosixPath(destination).relative_to("/")
        into_folder = destination.endswith("/") or len(sources) > 1 or target.is_dir()
        for source in sources:
            path = ROOT / source
            assert path.exists(), f"the Dockerfile copies {source}, which does not exist"
            if path.is_dir():
                shutil.copytree(
                    path,
                    target,
                    dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
                )
            elif into_folder:
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, target / path.name)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, target)
    return workdir


def files_under(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


@dataclass
class Image:
    dockerfile: Dockerfile
    app_dir: Path
    files: set[str]
    venv_bin: Path
    scratch: Path

    def env(self, **overrides: str) -> dict[str, str]:
        """A clean environment: the image's ENV, then production settings for this test."""
        env = {
            "PATH": f"{self.venv_bin}{os.pathsep}{os.environ.get('PATH', '')}",
            "HOME": str(self.scratch),
            "LANG": "C.UTF-8",
            **self.dockerfile.env,
            "DATA_DIR": str(self.scratch / "data"),
            "HOST": "127.0.0.1",
            "PORT": str(free_port()),
            "SECRET_KEY": "container-test-secret-key-0123456789-abcdef",
            "ENCRYPTION_KEY": Fernet.generate_key().decode(),
            "TRIPLETEX_CONSUMER_TOKEN": "container-consumer-token",
            # Nothing here may reach the internet; the discard port refuses at once.
            "TRIPLETEX_BASE_URL": "http://127.0.0.1:9/v2",
        }
        env.update(overrides)
        return env

    def run(
        self, argv: list[str], env: dict[str, str], **kwargs: Any
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            argv, cwd=self.app_dir, env=env, capture_output=True, text=True, **kwargs
        )


@pytest.fixture(scope="module")
def dockerfile() -> Dockerfile:
    return parse_dockerfile(DOCKERFILE.read_text())


@pytest.fixture(scope="module")
def image(dockerfile: Dockerfile, tmp_path_factory: pytest.TempPathFactory) -> Image:
    scratch = tmp_path_factory.mktemp("container")
    app_dir = copy_into(scratch / "image", dockerfile)
    venv = scratch / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    install = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(venv / "bin" / "python"),
            "install",
            "--disable-pip-version-check",
            "-q",
            "-r",
            "requirements.txt",
        ],
        cwd=app_dir,
        capture_output=True,
        text=True,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    return Image(dockerfile, app_dir, files_under(app_dir), venv / "bin", scratch)


@pytest.fixture(scope="module")
def database_url() -> Iterator[str | None]:
    """None: SQLite in DATA_DIR (the image's default). PostgreSQL in the PostgreSQL pass."""
    if not databases.ON_POSTGRES:
        yield None
        return
    url = asyncio.run(databases.create_postgres_database("container"))
    yield url.replace("postgresql+asyncpg://", "postgresql://", 1)
    asyncio.run(databases.drop_postgres_database(url))


@dataclass
class Server:
    url: str
    env: dict[str, str]
    log: Path


@pytest.fixture(scope="module")
def server(image: Image, database_url: str | None) -> Iterator[Server]:
    env = image.env(**({"DATABASE_URL": database_url} if database_url else {}))
    created = image.run(
        ["python", "app.py", "create-user", "--email", EMAIL, "--office", OFFICE],
        env,
        input=PASSWORD + "\n",
        timeout=60,
    )
    assert created.returncode == 0, created.stdout + created.stderr
    assert f"Created {EMAIL}" in created.stdout

    log = image.scratch / "server.log"
    try:
        process, url = serve(image.dockerfile.cmd, cwd=image.app_dir, env=env, log=log)
    except ServerDidNotStart as exc:
        pytest.fail(str(exc))
    yield Server(url, env, log)
    process.send_signal(signal.SIGTERM)  # what `docker stop` sends
    try:
        process.wait(timeout=10)  # then it kills
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail(f"did not stop within 10 s of SIGTERM:\n{log.read_text()}")


@pytest.mark.database_agnostic
def test_the_dockerfile_builds_a_small_non_root_image(dockerfile: Dockerfile) -> None:
    assert dockerfile.base == "python:3.11-slim"
    assert dockerfile.user.split(":")[0] == "10001"
    assert any("pip install --no-cache-dir -r requirements.txt" in run for run in dockerfile.runs)
    copied = {source.rstrip("/") for sources, _ in dockerfile.copies for source in sources}
    assert copied == {
        "requirements.txt",
        "app.py",
        "alembic.ini",
        "migrations",
        "models",
        "routes",
        "services",
        "simulators",
        "static",
        "templates",
        "web",
    }
    assert "requirements-dev" not in " ".join(dockerfile.runs)
    assert dockerfile.volumes == ["/data"]
    assert dockerfile.expose == ["8000"]
    assert {k: dockerfile.env[k] for k in ("DATA_DIR", "HOST", "PORT")} == {
        "DATA_DIR": "/data",
        "HOST": "0.0.0.0",
        "PORT": "8000",
    }
    assert "/healthz" in " ".join(dockerfile.healthcheck)
    assert dockerfile.cmd == ["python", "app.py", "run"]
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".git", ".venv", ".env", "data", "tests", "test-artifacts"} <= ignored


def test_production_login_over_http(image: Image, server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as http:
        page = http.get("/login")
        assert page.status_code == 200
        assert "demo@example.no" not in page.text
        assets = re.findall(r'(?:href|src)="(/static/[^"]+)"', page.text)
        assert assets
        for asset in assets:
            assert http.get(asset).status_code == 200, asset
        token = http.cookies.get("erp_csrf")
        assert token
        response = http.post(
            "/login",
            data={"email": EMAIL, "password": PASSWORD, "_csrf_token": token},
            follow_redirects=True,
        )
        assert response.status_code == 200, server.log.read_text()
        assert response.url.path == "/integrasjoner"
        assert "Integrasjoner" in response.text
        # No simulator outside demo mode.
        assert http.get("/tripletex/v2/company/>withLoginAccess").status_code == 404
    # The app writes only to DATA_DIR (the image's code folder belongs to root)...
    assert files_under(image.app_dir) == image.files
    # ...and no SQLite database there when DATABASE_URL names PostgreSQL.
    sqlite_file = Path(server.env["DATA_DIR"]) / "erp.sqlite3"
    assert sqlite_file.exists() == ("DATABASE_URL" not in server.env)


def test_healthcheck(image: Image, server: Server) -> None:
    if '"/healthz"' not in "".join(p.read_text() for p in (image.app_dir / "routes").glob("*.py")):
        pytest.skip("the app has no /healthz route yet")
    response = httpx.get(f"{server.url}/healthz", timeout=5)
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    # The Dockerfile's HEALTHCHECK, as the engine runs it inside the container...
    check = image.run(image.dockerfile.healthcheck, server.env, timeout=10)
    assert check.returncode == 0, check.stderr
    # ...and it fails when nothing answers.
    down = image.run(image.dockerfile.healthcheck, {**server.env, "PORT": str(free_port())})
    assert down.returncode != 0


def test_refuses_to_start_without_encryption_key(image: Image) -> None:
    env = image.env()
    del env["ENCRYPTION_KEY"]
    result = image.run(image.dockerfile.cmd, env, timeout=60)
    assert result.returncode != 0
    assert "ENCRYPTION_KEY" in result.stderr
