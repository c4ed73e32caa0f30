"""The deploy (deploy/): Helm values against the Dagster chart's keys and the ``kubernetes`` client's models, the ECS
task definitions against botocore's ECS model and moto's ECS, the instance configs with the K8s and ECS run
launchers loading the code location, and the Dockerfile's sources and command."""

from __future__ import annotations

import copy
import http.server
import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import botocore.session
import dagster as dg
import jsonschema
import pytest
import yaml
from botocore.validate import ParamValidator
from kubernetes.client import ApiClient

from eval_pipeline.run_executors import EXECUTOR_ENV
from eval_pipeline.suite_definitions import build_definitions
from eval_pipeline.suites import load_suites
from tests.dagster_chart_values import VALUES_SCHEMA

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"
HELM_VALUES = DEPLOY / "helm" / "values.yaml"
TASK_DEFINITIONS = (DEPLOY / "ecs" / "task-definition.json", DEPLOY / "ecs" / "run-task-definition.json")
K8S = ApiClient()


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _at(data: Any, path: str) -> Any:
    for part in path.split("."):
        data = data[int(part)] if isinstance(data, list) else data[part]
    return data


# --- the kubernetes client's models, strictly -------------------------------------------------------------------


def strict_model(data: Any, klass: str, where: str = "") -> Any:
    """``data`` deserialized into the kubernetes model ``klass`` (``"V1EnvVar"``, ``"list[V1Volume]"``); the model
    must give back exactly ``data``: the client drops keys it does not know and coerces types, so a misspelt key or
    a number where a quantity string belongs is an error here (required fields are the client's own check)."""
    try:
        model = K8S._ApiClient__deserialize(data, klass)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{where or klass}: {exc}") from None
    back = K8S.sanitize_for_serialization(model)
    if back != data:
        raise ValueError(f"{where or klass}: not a {klass}: {_difference(data, back)}")
    return model


def strict_partial_model(data: dict[str, Any], klass: str, where: str = "") -> None:
    """Some fields of the kubernetes model ``klass`` (a pod spec without containers, a job spec without template):
    each key must be a field of it, each value its field's model."""
    model = getattr(__import__("kubernetes.client", fromlist=[klass]), klass)
    fields = {json_key: attribute for attribute, json_key in model.attribute_map.items()}
    for key, value in data.items():
        if key not in fields:
            raise ValueError(f"{where or klass}: {key!r} is not a field of {klass}")
        strict_model(value, model.openapi_types[fields[key]], f"{where}.{key}")


def _difference(expected: Any, got: Any, path: str = "") -> str:
    if isinstance(expected, dict) and isinstance(got, dict):
        for key in expected:
            if key not in got:
                return f"{path}.{key} is not a field (or was dropped)"
            if expected[key] != got[key]:
                return _difference(expected[key], got[key], f"{path}.{key}")
    if isinstance(expected, list) and isinstance(got, list) and len(expected) == len(got):
        for index, (one, other) in enumerate(zip(expected, got, strict=True)):
            if one != other:
                return _difference(one, other, f"{path}.{index}")
    return f"{path or 'value'}: {expected!r} became {got!r}"


USER_DEPLOYMENT = "dagster-user-deployments.deployments.0"
K8S_LAUNCHER = "runLauncher.config.k8sRunLauncher"
K8S_SHAPES = [  # (path in the values, the kubernetes model)
    (f"{USER_DEPLOYMENT}.env", "list[V1EnvVar]"),
    (f"{USER_DEPLOYMENT}.envSecrets", "list[V1SecretEnvSource]"),
    (f"{USER_DEPLOYMENT}.resources", "V1ResourceRequirements"),
    (f"{USER_DEPLOYMENT}.podSecurityContext", "V1PodSecurityContext"),
    (f"{USER_DEPLOYMENT}.securityContext", "V1SecurityContext"),
    (f"{USER_DEPLOYMENT}.volumes", "list[V1Volume]"),
    (f"{USER_DEPLOYMENT}.volumeMounts", "list[V1VolumeMount]"),
    (f"{K8S_LAUNCHER}.envSecrets", "list[V1SecretEnvSource]"),
    (f"{K8S_LAUNCHER}.resources", "V1ResourceRequirements"),
    ("dagsterDaemon.env", "list[V1EnvVar]"),
    ("dagsterWebserver.env", "list[V1EnvVar]"),
]
K8S_PARTIAL_SHAPES = [
    (f"{K8S_LAUNCHER}.runK8sConfig.podSpecConfig", "V1PodSpec"),
    (f"{K8S_LAUNCHER}.runK8sConfig.jobSpecConfig", "V1JobSpec"),
]


@pytest.fixture(scope="module")
def helm_values() -> dict[str, Any]:
    return _yaml(HELM_VALUES)


def test_the_helm_values_use_only_the_dagster_charts_keys(helm_values: dict[str, Any]) -> None:
    jsonschema.Draft7Validator(VALUES_SCHEMA).validate(helm_values)
    assert helm_values["runLauncher"]["type"] == "K8sRunLauncher"
    assert set(helm_values["runLauncher"]["config"]) == {"k8sRunLauncher"}  # the block the type selects
    coordinator = helm_values["dagsterDaemon"]["runCoordinator"]
    assert coordinator["type"] == "QueuedRunCoordinator" and set(coordinator["config"]) == {"queuedRunCoordinator"}
    (deployment,) = helm_values["dagster-user-deployments"]["deployments"]
    assert deployment["codeServerArgs"] == ["-m", "eval_pipeline.definitions"]
    assert importlib.util.find_spec("eval_pipeline.definitions") is not None


@pytest.mark.parametrize("path, klass", K8S_SHAPES, ids=[p for p, _ in K8S_SHAPES])
def test_the_pod_shaped_helm_values_are_kubernetes_models(helm_values: dict[str, Any], path: str,
                                                          klass: str) -> None:
    strict_model(_at(helm_values, path), klass, path)


@pytest.mark.parametrize("path, klass", K8S_PARTIAL_SHAPES, ids=[p for p, _ in K8S_PARTIAL_SHAPES])
def test_the_run_k8s_config_is_made_of_kubernetes_fields(helm_values: dict[str, Any], path: str, klass: str) -> None:
    strict_partial_model(_at(helm_values, path), klass, path)


def test_a_misspelt_or_mistyped_key_is_refused(helm_values: dict[str, Any]) -> None:
    """The checks above can fail: each broken copy is refused, naming the place."""
    schema = jsonschema.Draft7Validator(VALUES_SCHEMA)
    broken = copy.deepcopy(helm_values)
    broken["dagster-user-deployments"]["deployments"][0]["codeServerArg"] = ["-m", "eval_pipeline.definitions"]
    assert any("codeServerArg" in error.message for error in schema.iter_errors(broken))
    broken = copy.deepcopy(helm_values)
    broken["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]["tagConcurrencyLimits"][0]["limt"] = 1
    assert not schema.is_valid(broken)

    resources = _at(helm_values, f"{USER_DEPLOYMENT}.resources")
    with pytest.raises(ValueError, match="limts"):
        strict_model({**resources, "limts": {"cpu": "1"}}, "V1ResourceRequirements")
    with pytest.raises(ValueError, match="cpu"):
        strict_model({"requests": {"cpu": 1}}, "V1ResourceRequirements")  # a quantity is a string
    with pytest.raises(ValueError, match="sizeLimt"):
        strict_model([{"name": "scratch", "emptyDir": {"sizeLimt": "1Gi"}}], "list[V1Volume]")
    with pytest.raises(ValueError, match="name"):
        strict_model([{"value": "k8s"}], "list[V1EnvVar]")  # required by the model
    with pytest.raises(ValueError, match="serviceAcountName"):
        strict_partial_model({"serviceAcountName": "dagster"}, "V1PodSpec")


def test_the_run_queue_is_the_same_on_kubernetes_ecs_and_a_laptop(helm_values: dict[str, Any]) -> None:
    """The chart's queued run coordinator, both instance files and ``eval-pipeline``'s local instance limit the same
    tags (the tags the runs carry)."""
    from eval_pipeline.assets.run_tags import BACKEND_TAG
    from eval_pipeline.instance import instance_config

    def keys(limits: list[dict[str, Any]]) -> list[tuple[str, Any]]:
        return [(limit["key"], limit.get("value")) for limit in limits]

    chart = helm_values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]["tagConcurrencyLimits"]
    local = instance_config()["concurrency"]["runs"]["tag_concurrency_limits"]
    assert BACKEND_TAG in [key for key, _ in keys(chart)]
    for instance_file in (DEPLOY / "k8s" / "dagster.yaml", DEPLOY / "ecs" / "dagster.yaml"):
        runs = _yaml(instance_file)["concurrency"]["runs"]
        assert runs["tag_concurrency_limits"] == chart, instance_file
        assert runs["max_concurrent_runs"] == helm_values["dagsterDaemon"]["runCoordinator"]["config"][
            "queuedRunCoordinator"]["maxConcurrentRuns"]
    assert keys(local) == keys(chart)


def _env_names_in(text: str) -> set[str]:
    return set(re.findall(r"\bEVAL_PIPELINE_[A-Z_]+\b", text))


def test_every_variable_the_deploy_sets_is_one_the_code_or_the_instance_reads() -> None:
    """No misspelt variable: each ``EVAL_PIPELINE_*`` name in deploy/ is read by the package, or by an instance
    file (``env:``) of deploy/."""
    package = "".join(path.read_text(encoding="utf-8") for path in (REPO / "eval_pipeline").rglob("*.py"))
    instance_files = "".join((DEPLOY / kind / "dagster.yaml").read_text(encoding="utf-8") for kind in ("k8s", "ecs"))
    read_by_instance = set(re.findall(r"env:\s*(EVAL_PIPELINE_[A-Z_]+)", instance_files))
    known = _env_names_in(package) | read_by_instance
    for path in [*DEPLOY.rglob("*.yaml"), *DEPLOY.rglob("*.json"), DEPLOY / "Dockerfile"]:
        unknown = _env_names_in(path.read_text(encoding="utf-8")) - known
        assert not unknown, f"{path.relative_to(REPO)} sets {sorted(unknown)}, which nothing reads"


# --- ECS --------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ecs_input_shape() -> Any:
    return botocore.session.get_session().get_service_model("ecs").operation_model("RegisterTaskDefinition").input_shape


@pytest.mark.parametrize("path", TASK_DEFINITIONS, ids=lambda p: p.name)
def test_the_task_definitions_are_register_task_definition_input(path: Path, ecs_input_shape: Any) -> None:
    report = ParamValidator().validate(json.loads(path.read_text(encoding="utf-8")), ecs_input_shape)
    assert not report.has_errors(), report.generate_report()


def test_botocores_model_refuses_a_broken_task_definition(ecs_input_shape: Any) -> None:
    definition = json.loads(TASK_DEFINITIONS[0].read_text(encoding="utf-8"))
    definition["containerDefinitions"][0]["portMapping"] = definition["containerDefinitions"][0].pop("portMappings")
    definition["cpu"] = 2048  # a string in ECS's model
    report = ParamValidator().validate(definition, ecs_input_shape).generate_report()
    assert "portMapping" in report and "cpu" in report


def test_the_containers_run_the_code_location_webserver_and_daemon() -> None:
    services = json.loads(TASK_DEFINITIONS[0].read_text(encoding="utf-8"))
    commands = {c["name"]: c["command"] for c in services["containerDefinitions"]}
    assert commands["code-location"][-2:] == ["-m", "eval_pipeline.definitions"]
    workspace = _yaml(DEPLOY / "workspace.yaml")
    (server,) = [entry["grpc_server"] for entry in workspace["load_from"]]
    assert str(server["port"]) == commands["code-location"][commands["code-location"].index("-p") + 1]
    assert commands["webserver"][0] == "dagster-webserver" and commands["daemon"][:2] == ["dagster-daemon", "run"]
    for name in ("webserver", "daemon"):
        assert commands[name][commands[name].index("-w") + 1] == "/app/workspace.yaml"  # COPY'd by the Dockerfile
    run = json.loads(TASK_DEFINITIONS[1].read_text(encoding="utf-8"))
    ecs_instance = _yaml(DEPLOY / "ecs" / "dagster.yaml")["run_launcher"]["config"]
    assert [c["name"] for c in run["containerDefinitions"]] == [ecs_instance["container_name"]]
    run_env = {e["name"]: e["value"] for e in run["containerDefinitions"][0]["environment"]}
    assert run_env["EVAL_PIPELINE_RUN_TASK_DEFINITION"] == run["family"]


@pytest.fixture
def ecs_env(aws_env: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """moto for every boto3 client made without an endpoint (the run launcher's ECS, EC2, Secrets Manager, Logs)."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws_env)
    return aws_env


def test_moto_registers_the_task_definitions(ecs_env: str) -> None:
    ecs = boto3.client("ecs")
    for path in TASK_DEFINITIONS:
        definition = json.loads(path.read_text(encoding="utf-8"))
        registered = ecs.register_task_definition(**definition)["taskDefinition"]
        assert registered["family"] == definition["family"] and registered["revision"] == 1
        described = ecs.describe_task_definition(taskDefinition=definition["family"])["taskDefinition"]
        assert [c["name"] for c in described["containerDefinitions"]] == [
            c["name"] for c in definition["containerDefinitions"]]


# --- the instances: the code location loads with each launcher --------------------------------------------------


def _instance_home(tmp_path: Path, kind: str, edit: Any = None) -> Path:
    """A Dagster home holding deploy/<kind>/dagster.yaml (edited by ``edit`` where a test must, e.g. a kubeconfig)."""
    home = tmp_path / f"dagster-{kind}"
    home.mkdir()
    config = _yaml(DEPLOY / kind / "dagster.yaml")
    if edit is not None:
        edit(config)
    (home / "dagster.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return home


def _kubeconfig(tmp_path: Path, server: str) -> Path:
    """A throwaway kubeconfig for an API server on 127.0.0.1 (nothing in ``~/.kube`` is read)."""
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "test",
        "clusters": [{"name": "test", "cluster": {"server": server}}],
        "users": [{"name": "test", "user": {"token": "test-token"}}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test", "namespace": "dagster"}}],
    }), encoding="utf-8")
    return path


def _outside_the_cluster(kubeconfig: Path) -> Any:
    def edit(config: dict[str, Any]) -> None:
        config["run_launcher"]["config"].update(load_incluster_config=False, kubeconfig_file=str(kubeconfig))
    return edit


@pytest.fixture
def cluster_env(ecs_env: str, postgres_url: str, eval_home: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """What the deploy's containers get: the instance's Postgres URL (psycopg2 named: SQLAlchemy 2.1 takes a bare
    ``postgresql://`` for psycopg 3, which dagster-postgres does not install), a log bucket (in moto), the suites."""
    monkeypatch.setenv("EVAL_PIPELINE_DAGSTER_PG_URL", postgres_url.replace("postgresql://", "postgresql+psycopg2://"))
    monkeypatch.setenv("EVAL_PIPELINE_LOG_BUCKET", "eval-logs")
    monkeypatch.setenv("EVAL_PIPELINE_SUITES", str(REPO / "evals"))
    boto3.client("s3").create_bucket(Bucket="eval-logs")
    return postgres_url


def _load_code_location(executor: str, monkeypatch: pytest.MonkeyPatch) -> dg.Definitions:
    """The definitions the image's code server builds (the baked suites), with ``executor`` chosen."""
    monkeypatch.setenv(EXECUTOR_ENV, executor)
    definitions = build_definitions(load_suites())
    dg.Definitions.validate_loadable(definitions)
    assert {job.executor_def.name for job in definitions.resolve_all_job_defs()} == {executor}
    return definitions


def test_the_code_location_loads_with_the_k8s_run_launcher(tmp_path: Path, cluster_env: str,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from dagster_k8s import K8sRunLauncher
    from dagster_postgres import PostgresRunStorage

    home = _instance_home(tmp_path, "k8s", _outside_the_cluster(_kubeconfig(tmp_path, "http://127.0.0.1:9")))
    with dg.DagsterInstance.from_config(str(home)) as instance:
        launcher = instance.run_launcher
        assert isinstance(launcher, K8sRunLauncher)
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert launcher.job_namespace == "dagster" and "EVAL_PIPELINE_EXECUTOR=k8s" in launcher.env_vars
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
    _load_code_location("k8s", monkeypatch)


def test_the_code_location_loads_with_the_ecs_run_launcher(tmp_path: Path, cluster_env: str,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The launcher resolves the run task definition registered in moto and finds its ``run`` container."""
    from dagster_aws.ecs import EcsRunLauncher

    run = json.loads(TASK_DEFINITIONS[1].read_text(encoding="utf-8"))
    arn = boto3.client("ecs").register_task_definition(**run)["taskDefinition"]["taskDefinitionArn"]
    monkeypatch.setenv("EVAL_PIPELINE_RUN_TASK_DEFINITION", run["family"])
    home = _instance_home(tmp_path, "ecs")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        launcher = instance.run_launcher
        assert isinstance(launcher, EcsRunLauncher)
        assert launcher.task_definition == arn and launcher.container_name == "run"
    _load_code_location("ecs", monkeypatch)

    monkeypatch.setenv("EVAL_PIPELINE_RUN_TASK_DEFINITION", "no-such-family")
    missing = pytest.raises(Exception, match="DescribeTaskDefinition")
    with dg.DagsterInstance.from_config(str(home)) as instance, missing:
        instance.run_launcher  # noqa: B018 (the launcher is built, and checked against ECS, on first use)


# --- the Dockerfile -----------------------------------------------------------------------------------------------


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(instruction, arguments) of a Dockerfile: comments dropped, continuation lines joined."""
    instructions, pending = [], ""
    for line in path.read_text(encoding="utf-8").splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        keyword, _, arguments = pending.strip().partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    return instructions


def _expand(text: str, values: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: values.get(m.group(1) or m.group(2), m.group(0)), text)


def test_the_dockerfile_copies_what_exists_and_starts_the_code_location() -> None:
    instructions = dockerfile_instructions(DEPLOY / "Dockerfile")
    arguments: dict[str, str] = {}
    for keyword, rest in instructions:
        if keyword in {"ARG", "ENV"}:
            for token in shlex.split(rest):
                name, _, value = token.partition("=")
                arguments[name] = value
    assert instructions[1] == ("FROM", "${PYTHON_IMAGE}") and arguments["PYTHON_IMAGE"] == "python:3.11-slim"

    copies = [shlex.split(_expand(rest, arguments)) for keyword, rest in instructions if keyword == "COPY"]
    assert copies, "no COPY"
    for *sources, _destination in copies:
        for source in sources:
            assert (REPO / source).exists(), f"COPY {source}: not in the repository (the build context)"
    for kind in ("ecs", "k8s"):  # both values of the DAGSTER_INSTANCE build argument
        assert (REPO / "deploy" / kind / "dagster.yaml").is_file()

    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    extras = pyproject["project"]["optional-dependencies"]
    assert set(arguments["EXTRAS"].split(",")) <= set(extras) and "local" in extras
    assert "torch" not in " ".join(dep for name in arguments["EXTRAS"].split(",") for dep in extras[name])

    (command,) = [json.loads(rest) for keyword, rest in instructions if keyword == "CMD"]
    assert command[:3] == ["dagster", "code-server", "start"]
    module = command[command.index("-m") + 1]
    assert importlib.util.find_spec(module) is not None
    assert command[command.index("-p") + 1] == str(_yaml(DEPLOY / "workspace.yaml")["load_from"][0]["grpc_server"][
        "port"])
    assert ("EXPOSE", command[command.index("-p") + 1]) in instructions
    dagster = Path(sys.executable).parent / "dagster"
    help_text = subprocess.run([str(dagster), *command[1:3], "--help"], capture_output=True, text=True,
                               timeout=120, check=True, env={**os.environ, "DAGSTER_HOME": ""}).stdout
    for option in ("--host", "--port", "--module-name"):
        assert option in help_text


@pytest.mark.slow
def test_a_run_launched_from_the_code_location_starts_an_ecs_task(tmp_path: Path, cluster_env: str,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """``dagster job launch`` against the deploy's instance (Postgres, EcsRunLauncher; runs launched at once instead
    of queued, as no daemon runs here): moto's ECS starts a task of the run task definition whose ``run`` container
    executes the run, tagged with the run's partition."""
    ecs, ec2 = boto3.client("ecs"), boto3.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="runs", Description="runs", VpcId=vpc)["GroupId"]
    cluster = ecs.create_cluster(clusterName="eval")["cluster"]["clusterArn"]
    run_definition = json.loads(TASK_DEFINITIONS[1].read_text(encoding="utf-8"))
    arn = ecs.register_task_definition(**run_definition)["taskDefinition"]["taskDefinitionArn"]
    monkeypatch.setenv("EVAL_PIPELINE_RUN_TASK_DEFINITION", run_definition["family"])
    monkeypatch.setenv(EXECUTOR_ENV, "ecs")

    def outside_ecs(config: dict[str, Any]) -> None:  # the daemon's own task would give cluster and network
        config["run_coordinator"] = {"module": "dagster._core.run_coordinator", "class": "DefaultRunCoordinator"}
        config["run_launcher"]["config"].update(use_current_ecs_task_config=False, run_task_kwargs={
            "cluster": "eval", "launchType": "FARGATE", "networkConfiguration": {"awsvpcConfiguration": {
                "subnets": [subnet], "securityGroups": [group], "assignPublicIp": "DISABLED"}}})

    home = _instance_home(tmp_path, "ecs", outside_ecs)
    _launch_quickstart_run(home)

    (task_arn,) = ecs.list_tasks(cluster="eval")["taskArns"]
    (task,) = ecs.describe_tasks(cluster="eval", tasks=[task_arn], include=["TAGS"])["tasks"]
    assert task["taskDefinitionArn"] == arn and task["launchType"] == "FARGATE"
    (override,) = task["overrides"]["containerOverrides"]
    assert override["name"] == "run" and override["command"][:3] == ["dagster", "api", "execute_run"]
    tags = {tag["key"]: tag["value"] for tag in task["tags"]}
    with dg.DagsterInstance.from_config(str(home)) as instance:
        (run,) = instance.get_runs()
        assert run.status == dg.DagsterRunStatus.STARTING
        assert run.tags["ecs/task_arn"] == task_arn and run.tags["ecs/cluster"] == cluster
    assert tags["dagster/run_id"] == run.run_id and tags["dagster/partition"] == "smollm2-135m"
    assert tags["eval/suite"] == "quickstart"


class KubernetesApiStandIn(http.server.ThreadingHTTPServer):
    """The one call a run launch makes to the Kubernetes API (create a Job), on 127.0.0.1: each posted Job is kept
    and echoed back as created; any other request is a 404, so an unexpected call fails the launch."""

    def __init__(self) -> None:
        self.jobs: list[tuple[str, dict[str, Any]]] = []
        super().__init__(("127.0.0.1", 0), _KubernetesApiHandler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _KubernetesApiHandler(http.server.BaseHTTPRequestHandler):
    server: KubernetesApiStandIn

    def do_POST(self) -> None:
        match = re.fullmatch(r"/apis/batch/v1/namespaces/([^/]+)/jobs", self.path.split("?")[0])
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        if match is None:
            self._reply(404, {"kind": "Status", "status": "Failure", "code": 404})
            return
        self.server.jobs.append((match.group(1), body))
        self._reply(201, body)

    def do_GET(self) -> None:
        self._reply(404, {"kind": "Status", "status": "Failure", "code": 404})

    def _reply(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def kubernetes_api() -> Iterator[KubernetesApiStandIn]:
    server = KubernetesApiStandIn()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.slow
def test_a_run_launched_from_the_code_location_creates_a_kubernetes_job(
        tmp_path: Path, cluster_env: str, kubernetes_api: KubernetesApiStandIn,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``dagster job launch`` against deploy/k8s/dagster.yaml (a kubeconfig instead of the in-cluster config; runs
    launched at once, as no daemon runs here): the K8sRunLauncher posts one Job, a valid ``V1Job`` of the kubernetes
    client, running the run in the code location's image with the deploy's env, secrets and resources."""
    image = "registry.example/eval-pipeline:test"
    monkeypatch.setenv("DAGSTER_CURRENT_IMAGE", image)  # what the Helm chart sets on the code server
    monkeypatch.setenv(EXECUTOR_ENV, "k8s")

    def launch_now(config: dict[str, Any]) -> None:
        _outside_the_cluster(_kubeconfig(tmp_path, kubernetes_api.url))(config)
        config["run_coordinator"] = {"module": "dagster._core.run_coordinator", "class": "DefaultRunCoordinator"}

    home = _instance_home(tmp_path, "k8s", launch_now)
    _launch_quickstart_run(home)

    ((namespace, posted),) = kubernetes_api.jobs
    job = K8S._ApiClient__deserialize(posted, "V1Job")
    (container,) = job.spec.template.spec.containers
    config = _yaml(DEPLOY / "k8s" / "dagster.yaml")["run_launcher"]["config"]
    assert namespace == config["job_namespace"]
    assert container.image == image and container.args[:3] == ["dagster", "api", "execute_run"]
    env = {var.name: var.value for var in container.env}
    for pair in config["env_vars"]:
        name, _, value = pair.partition("=")
        assert env[name] == value
    assert [source.secret_ref.name for source in container.env_from if source.secret_ref] == config["env_secrets"]
    assert container.resources.requests == config["resources"]["requests"]
    assert job.spec.ttl_seconds_after_finished == config["run_k8s_config"]["job_spec_config"][
        "ttl_seconds_after_finished"]
    assert job.spec.backoff_limit == 0
    with dg.DagsterInstance.from_config(str(home)) as instance:
        (run,) = instance.get_runs()
    assert run.status == dg.DagsterRunStatus.STARTING and run.run_id in " ".join(container.args)


def _launch_quickstart_run(home: Path) -> None:
    """``dagster job launch`` of one quickstart partition on the instance in ``home`` (its run launcher acts)."""
    done = subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "job", "launch", "-m", "eval_pipeline.definitions",
         "-j", "quickstart_eval", "--tags", json.dumps({"dagster/partition": "smollm2-135m"})],
        cwd=REPO, env={**os.environ, "DAGSTER_HOME": str(home)}, capture_output=True, text=True, timeout=300,
        check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
