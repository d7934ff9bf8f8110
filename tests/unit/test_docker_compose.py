"""The container stack (docker-compose.yml and the Dockerfile) is wired the way the app needs.

Checks of the files, and of the settings they produce: no Docker engine and no database are
needed.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
APP_SERVICES = ("web", "worker")


def env_dict(environment: dict | list | None) -> dict[str, str]:
    """A service's ``environment`` as a dict, from either compose form.

    Compose accepts a mapping (``KEY: value``) or a list of ``KEY=VALUE`` strings; a bare
    ``KEY`` in the list passes the variable through from the host, with no value here.
    """
    if not environment:
        return {}
    if isinstance(environment, dict):
        return {str(k): "" if v is None else str(v) for k, v in environment.items()}
    result = {}
    for item in environment:
        key, _, value = str(item).partition("=")
        result[key] = value
    return result


def command_words(command: str | list) -> list[str]:
    """A service's ``command`` as a list of words, from either compose form."""
    return command.split() if isinstance(command, str) else [str(word) for word in command]


def volume_mounts(volumes: list) -> dict[str, str]:
    """A service's volumes as ``{target path: source}``, from short or long syntax."""
    mounts = {}
    for volume in volumes or []:
        if isinstance(volume, dict):
            mounts[volume["target"]] = volume.get("source", "")
        else:
            source, _, rest = str(volume).partition(":")
            mounts[rest.split(":")[0]] = source
    return mounts


# What an operator supplies (the variables compose requires); everything else is the file's.
OPERATOR_ENV = {
    "POSTGRES_PASSWORD": "a-database-password",
    "DJANGO_SECRET_KEY": "x7#kq2!v9@mz4$w8^r1&t6*y3(p0)s5-u_n=b+c[d]e{f}g|h;j:l,o.i",
    "AWS_SECRET_ACCESS_KEY": "a-minio-password",
}
VARIABLE = re.compile(r"\$\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}|\$\$")


def interpolate(value: str, host_env: dict[str, str]) -> str:
    """Compose's variable substitution: ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``,
    ``${VAR:?error}`` (fails when unset or empty) and ``$$`` for a literal ``$``."""

    def substitute(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.group("name", "op", "arg")
        value = host_env.get(name)
        if op == ":?" and not value:
            raise ValueError(f"{name}: {arg}")
        if op == ":-" and not value:
            return arg
        if op == "-" and value is None:
            return arg
        return value or ""

    return VARIABLE.sub(substitute, value)


def container_env(service: dict, host_env: dict[str, str]) -> dict[str, str]:
    """The environment a service's container gets from the compose file and the host."""
    return {
        key: interpolate(value, host_env)
        for key, value in env_dict(service.get("environment")).items()
    }


def check_deploy(env: dict[str, str]) -> subprocess.CompletedProcess:
    """``manage.py check --deploy`` failing on warnings, with only ``env`` of the project's
    variables (the test run's own DJANGO_/DATABASE_/RAG_ variables removed)."""
    base = {
        k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_", "RAG_"))
    }
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def compose() -> dict:
    # safe_load resolves the anchors and merge keys (x-app-env, x-app) like compose does.
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(compose: dict) -> dict:
    return compose["services"]


def test_stack_has_database_broker_web_and_worker(services):
    assert {"db", "redis", "web", "worker"} <= set(services)


def test_database_image_provides_pgvector(services):
    assert "pgvector" in services["db"]["image"]


def test_every_service_has_a_healthcheck(services):
    for name, service in services.items():
        if service.get("restart") == "no":
            continue  # a one-shot job (the bucket's creation): it exits, it is not watched
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"


def test_app_services_start_only_once_database_and_broker_are_healthy(services):
    for name in APP_SERVICES:
        depends_on = services[name]["depends_on"]
        for dependency in ("db", "redis"):
            assert depends_on[dependency]["condition"] == "service_healthy", (name, dependency)


def test_web_and_worker_share_database_and_broker(services):
    web = env_dict(services["web"]["environment"])
    worker = env_dict(services["worker"]["environment"])

    assert web["DATABASE_URL"] == worker["DATABASE_URL"]
    assert urlparse(web["DATABASE_URL"]).hostname == "db"
    assert web["CELERY_BROKER_URL"] == worker["CELERY_BROKER_URL"]
    assert urlparse(web["CELERY_BROKER_URL"]).hostname == "redis"


def test_worker_runs_the_projects_celery_app(services):
    words = command_words(services["worker"]["command"])
    assert words[:4] == ["celery", "-A", "fca_site", "worker"]


def test_web_migrates_before_serving_with_gunicorn(services):
    command = " ".join(command_words(services["web"]["command"]))
    assert "manage.py migrate" in command
    assert command.index("manage.py migrate") < command.index("exec gunicorn")


def test_uploads_live_in_the_bucket_and_no_volume_is_shared_by_web_and_workers(compose, services):
    web = env_dict(services["web"]["environment"])
    worker = env_dict(services["worker"]["environment"])
    storage_keys = [key for key in web if key.startswith("AWS_")] + ["DJANGO_STORAGE"]
    assert web["DJANGO_STORAGE"] == "s3"
    assert {k: web[k] for k in storage_keys} == {k: worker[k] for k in storage_keys}
    assert urlparse(interpolate(web["AWS_S3_ENDPOINT_URL"], OPERATOR_ENV)).hostname == "minio"
    for name in APP_SERVICES:
        assert not services[name].get("volumes"), f"{name} mounts a volume: {services[name]}"
        assert "DJANGO_MEDIA_ROOT" not in env_dict(services[name]["environment"])
        condition = services[name]["depends_on"]["bucket"]["condition"]
        assert condition == "service_completed_successfully"
    # MinIO's own credentials are the ones web and workers use; the bucket service makes the
    # bucket they name, private.
    minio = env_dict(services["minio"]["environment"])
    assert minio["MINIO_ROOT_USER"] == web["AWS_ACCESS_KEY_ID"]
    assert minio["MINIO_ROOT_PASSWORD"] == web["AWS_SECRET_ACCESS_KEY"]
    bucket = services["bucket"]
    assert env_dict(bucket["environment"])["BUCKET"] == web["AWS_STORAGE_BUCKET_NAME"]
    assert "mc anonymous set none" in " ".join(command_words(bucket["entrypoint"]))
    assert "minio-data" in compose["volumes"]


def test_secret_key_must_be_supplied(services):
    for name in APP_SERVICES:
        secret = env_dict(services[name]["environment"])["DJANGO_SECRET_KEY"]
        assert re.fullmatch(r"\$\{DJANGO_SECRET_KEY:\?[^}]*\}", secret), (
            f"{name}: DJANGO_SECRET_KEY must use ${{DJANGO_SECRET_KEY:?...}} (no default), "
            f"got {secret!r}"
        )


def test_app_services_build_from_the_dockerfile(services):
    for name in APP_SERVICES:
        build = services[name]["build"]
        if isinstance(build, str):
            build = {"context": build}
        dockerfile = ROOT / build.get("context", ".") / build.get("dockerfile", "Dockerfile")
        assert dockerfile.resolve() == (ROOT / "Dockerfile").resolve(), name
        assert dockerfile.is_file()


def test_image_installs_cpu_torch_before_the_requirements():
    dockerfile = (ROOT / "Dockerfile").read_text()
    torch_install = re.search(
        r"pip install --index-url https://download\.pytorch\.org/whl/cpu torch==2\.13\.0\b",
        dockerfile,
    )
    requirements_install = re.search(r"pip install -r requirements\.txt", dockerfile)
    assert torch_install, "torch==2.13.0 is not installed from the CPU index"
    assert requirements_install, "requirements.txt is not installed"
    # Otherwise pip would resolve torch from the default index, CUDA libraries and all.
    assert torch_install.start() < requirements_install.start()


def test_image_runs_as_a_non_root_user():
    users = re.findall(r"^USER\s+(\S+)", (ROOT / "Dockerfile").read_text(), flags=re.MULTILINE)
    assert users and users[-1] not in {"root", "0"}


def test_compose_defaults_pass_the_deployment_checks_without_warnings(services):
    env = container_env(services["web"], OPERATOR_ENV)
    assert env["DJANGO_DEBUG"] == "0"
    result = check_deploy(env)
    output = result.stdout + result.stderr
    # The one issue outside the stack: its bucket cannot be reached from here (a check that
    # proves the settings point at the compose's MinIO), and no warning at all.
    assert "System check identified 1 issue" in output, output
    assert "(documents.E005) The bucket 'fca-uploads' at http://minio:9000 cannot be reached" in (
        output
    )
    assert "WARNINGS" not in output


def test_plain_http_switch_turns_the_https_settings_off(services):
    """DJANGO_HTTPS=0 is the documented way to run the stack without TLS; the deployment
    checks then name what is off (proving the defaults above are what turned it on)."""
    env = container_env(services["web"], {**OPERATOR_ENV, "DJANGO_HTTPS": "0"})
    result = check_deploy(env)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    for warning in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert warning in output, output


def test_compose_refuses_to_start_without_the_required_secrets(services):
    for missing in OPERATOR_ENV:
        env = {k: v for k, v in OPERATOR_ENV.items() if k != missing}
        with pytest.raises(ValueError, match=missing):
            for service in services.values():
                container_env(service, env)


def test_web_serves_the_asgi_application_with_the_projects_gunicorn_config(services):
    command = " ".join(command_words(services["web"]["command"]))
    asgi = "gunicorn -c gunicorn.conf.py --worker-class asgi fca_site.asgi:application"
    assert asgi in command and "wsgi" not in command
    assert (ROOT / "gunicorn.conf.py").is_file()
    cmd = re.search(r"^CMD\s+(.+)$", (ROOT / "Dockerfile").read_text(), flags=re.MULTILINE)
    assert cmd and '"-c", "gunicorn.conf.py"' in cmd.group(1)
    assert '"--worker-class", "asgi", "fca_site.asgi:application"' in cmd.group(1)


def test_gunicorn_is_pinned_in_requirements_not_installed_apart():
    requirements = (ROOT / "requirements.txt").read_text()
    assert re.search(r"^gunicorn==\d+\.\d+\.\d+$", requirements, flags=re.MULTILINE)
    assert "gunicorn" not in " ".join(
        re.findall(r"^RUN .*pip install.*$", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    )


def test_web_healthcheck_is_valid_python_that_accepts_the_https_redirect(services):
    test = services["web"]["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"]
    compile(test[3], "healthcheck", "exec")
    assert "301" in test[3]


def test_worker_limits_are_passed_through_to_the_containers(services):
    for name in APP_SERVICES:
        env = env_dict(services[name]["environment"])
        for variable in (
            "CELERY_WORKER_MAX_MEMORY_PER_CHILD",
            "RAG_MAX_UPLOAD_BYTES",
            "RAG_MAX_REQUEST_BYTES",
        ):
            assert variable in env, (name, variable)


def test_one_beat_service_sends_the_stuck_document_sweep(services):
    from django.conf import settings

    words = command_words(services["beat"]["command"])
    assert words[:4] == ["celery", "-A", "fca_site", "beat"]
    assert "deploy" not in services["beat"]  # one beat: each would send its own sweeps
    assert settings.RAG_REQUEUE_STUCK_INTERVAL > 0
    assert settings.CELERY_BEAT_SCHEDULE["requeue-stuck-documents"]["task"] == (
        "requeue_stuck_documents_task"
    )
