"""Model files from ``s3://`` and MLflow URIs: a tiny model built here, uploaded to the moto S3 server (127.0.0.1) and
logged to a real MLflow store (SQLite under tmp), resolved through ``model_files`` and loaded by the real local
sampler, which must answer exactly as it does from the local folder. S3 requests are counted with botocore's own
event hooks on the real client (nothing patched)."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
import yaml
from mlflow.tracking import MlflowClient

from eval_pipeline.errors import EvalInputError
from eval_pipeline.inference.base import GenerationParams, GenerationRequest
from eval_pipeline.inference.likelihood import LoglikelihoodRequest
from eval_pipeline.inference.likelihood_local import LocalLikelihoodScorer
from eval_pipeline.inference.local import LocalSampler
from eval_pipeline.inference.model_files import MODEL_FILE_SOURCES, model_uri_problem, resolve_model_files
from eval_pipeline.suites import load_suite
from eval_pipeline.suites.checkpoint_sources import SageMakerPackageGroup

BUCKET = "team-models"
PROMPTS = ["Two plus two is", "The capital of France", "What colour is the sky?", "quick brown"]
GREEDY = GenerationParams(max_tokens=10)
REPO_ROOT = Path(__file__).resolve().parent.parent


def requests_for(prompts: list[str]) -> list[GenerationRequest]:
    return [GenerationRequest(sample_id=f"s{i}", sample_index=0, messages=({"role": "user", "content": text},))
            for i, text in enumerate(prompts)]


def answers(model: str, **options: object) -> list[tuple[str | None, str, int, int]]:
    """What the real local sampler generates for the prompts from ``model`` (a folder or a URI)."""
    completions = LocalSampler(model, device="cpu", **options).generate(requests_for(PROMPTS), GREEDY)  # type: ignore[arg-type]
    assert all(c.error is None for c in completions)
    return [(c.output, c.finish_reason, c.tokens_in, c.tokens_out) for c in completions]


def retrain(folder: str, out: Path) -> str:
    """A copy of the model at ``folder`` with other weights (another "training step"), saved to ``out``."""
    import torch
    from safetensors.torch import load_file, save_file

    shutil.copytree(folder, out)
    weights = load_file(str(out / "model.safetensors"))
    generator = torch.Generator().manual_seed(1)
    save_file({name: tensor + 0.5 * torch.randn(tensor.shape, generator=generator) for name, tensor in weights.items()},
              str(out / "model.safetensors"), metadata={"format": "pt"})
    return str(out)


def files_of(folder: str | Path) -> dict[str, bytes]:
    root = Path(folder)
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh model cache (``$EVAL_PIPELINE_MODEL_CACHE``) and state folder for one test."""
    monkeypatch.setenv("EVAL_PIPELINE_MODEL_CACHE", str(tmp_path / "model-cache"))
    monkeypatch.setenv("EVAL_PIPELINE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return tmp_path / "model-cache" / "remote"


@pytest.fixture
def s3(aws_env: str) -> object:
    client = boto3.client("s3", region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    return client


@pytest.fixture
def s3_calls(aws_env: str) -> Iterator[list[str]]:
    """The S3 operations every client made from boto3's default session sends, by name (botocore event hooks)."""
    calls: list[str] = []
    boto3.setup_default_session()
    session = boto3.DEFAULT_SESSION
    assert session is not None

    def record(model: object, **_: object) -> None:
        calls.append(model.name)  # type: ignore[attr-defined]

    session.events.register("before-call.s3", record)
    yield calls
    boto3.DEFAULT_SESSION = None


def upload_folder(s3: object, folder: str | Path, prefix: str) -> list[str]:
    keys = []
    for name, body in files_of(folder).items():
        keys.append(f"{prefix}{name}")
        s3.put_object(Bucket=BUCKET, Key=keys[-1], Body=body)  # type: ignore[attr-defined]
    return keys


def tar_gz(members: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, body in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return buffer.getvalue()


# --- the registry and URI forms ----------------------------------------------------------------------------------


def test_each_remote_scheme_is_a_registry_entry() -> None:
    assert set(MODEL_FILE_SOURCES.names()) == {"s3", "models", "runs"}


@pytest.mark.parametrize(("uri", "problem"), [
    ("s3://Not_A_Bucket/x/", "'Not_A_Bucket' is not an S3 bucket name"),
    ("models:/chat", "models:/<name>/<version>"),
    ("models:/chat/Production", "models:/<name>/<version>"),
    ("runs:/0123abc", "runs:/<run_id>/<artifact path>"),
    ("hf://org/model", "unknown model-file source 'hf'"),
])
def test_a_malformed_uri_is_named_without_reading_it(uri: str, problem: str) -> None:
    message = model_uri_problem(uri)
    assert message is not None and uri in message and problem in message


@pytest.mark.parametrize("uri", ["s3://bucket-a/p/", "s3://bucket-a/p/model.tar.gz", "models:/chat model/3",
                                 "models:/chat@champion", "models:/chat/latest", "runs:/0123/model", "org/model",
                                 "./checkpoints/step-1", "smollm2-135m-instruct"])
def test_well_formed_uris_and_plain_names_pass(uri: str) -> None:
    assert model_uri_problem(uri) is None


def test_a_suite_declaring_a_malformed_model_uri_fails_at_load(tmp_path: Path) -> None:
    path = tmp_path / "evals" / "bad.yaml"
    path.parent.mkdir()
    spec = {"suite": "bad", "dataset": {"uri": "data/qa.jsonl"}, "schedule": None,
            "models": [{"name": "ft", "backend": "local", "model": "models:/chat"}]}
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    with pytest.raises(EvalInputError) as caught:
        load_suite(path)
    assert "bad.yaml" in str(caught.value) and "models:/chat" in str(caught.value)


def test_a_local_folder_resolves_as_before(tiny_model_dir: str, cache: Path) -> None:
    assert resolve_model_files(tiny_model_dir) == tiny_model_dir
    assert resolve_model_files(f"file://{tiny_model_dir}") == tiny_model_dir
    assert resolve_model_files("org/some-model") == "org/some-model"  # a Hugging Face id, as before
    assert not cache.exists()


# --- S3 ----------------------------------------------------------------------------------------------------------


def test_an_s3_prefix_loads_exactly_as_the_local_folder(tiny_model_dir: str, s3: object, cache: Path,
                                                        s3_calls: list[str]) -> None:
    keys = upload_folder(s3, tiny_model_dir, "llm/step-1/")
    s3.put_object(Bucket=BUCKET, Key="llm/step-1/", Body=b"")  # type: ignore[attr-defined]  # a folder marker
    uri = f"s3://{BUCKET}/llm/step-1/"

    local = resolve_model_files(uri)
    assert Path(local).parent == cache and files_of(local) == files_of(tiny_model_dir)
    assert s3_calls.count("GetObject") == len(keys)
    sampler = LocalSampler(uri, device="cpu")
    assert sampler.model_path == local and sampler.model_name == uri
    assert sampler.identity()["fingerprint"] == LocalSampler(tiny_model_dir).identity()["fingerprint"]
    assert answers(uri) == answers(tiny_model_dir)

    # The likelihood scorers load through the same sampler: the same numbers from S3 as from the folder.
    requests = [LoglikelihoodRequest("Two plus two is", " four"), LoglikelihoodRequest("", "Rome")]
    from_s3 = LocalLikelihoodScorer(uri).loglikelihood(requests)
    from_folder = LocalLikelihoodScorer(tiny_model_dir).loglikelihood(requests)
    assert [r.logprob for r in from_s3] == [r.logprob for r in from_folder]


def test_a_second_resolve_downloads_nothing_and_a_reupload_is_a_new_copy(tiny_model_dir: str, s3: object,
                                                                         cache: Path, s3_calls: list[str]) -> None:
    keys = upload_folder(s3, tiny_model_dir, "llm/step-2/")
    uri = f"s3://{BUCKET}/llm/step-2"  # without the trailing slash: the same prefix
    first = resolve_model_files(uri)
    assert s3_calls.count("GetObject") == len(keys)
    s3_calls.clear()
    assert resolve_model_files(uri) == first
    assert s3_calls == ["ListObjectsV2"]  # the listing that names the copy; nothing downloaded

    config = json.loads(Path(tiny_model_dir, "config.json").read_text())
    s3.put_object(Bucket=BUCKET, Key="llm/step-2/config.json",  # type: ignore[attr-defined]
                  Body=json.dumps({**config, "note": "retrained"}).encode())
    s3_calls.clear()
    second = resolve_model_files(uri)
    assert second != first and json.loads(Path(second, "config.json").read_text())["note"] == "retrained"
    assert s3_calls.count("GetObject") == len(keys)
    assert sorted(p.name for p in cache.iterdir() if not p.name.startswith(".")) == sorted(
        [Path(first).name, Path(second).name])


def test_a_sagemaker_model_tar_gz_is_extracted_and_loads(tiny_model_dir: str, s3: object, cache: Path) -> None:
    archive = tar_gz({f"model/{name}": body for name, body in files_of(tiny_model_dir).items()})
    s3.put_object(Bucket=BUCKET, Key="sm/v1/model.tar.gz", Body=archive)  # type: ignore[attr-defined]
    uri = f"s3://{BUCKET}/sm/v1/model.tar.gz"
    local = resolve_model_files(uri)
    assert files_of(local) == files_of(tiny_model_dir)
    assert answers(uri) == answers(tiny_model_dir)


@pytest.mark.parametrize(("members", "links", "refused"), [
    ({"config.json": b"{}", "../escaped.txt": b"x"}, {}, "../escaped.txt"),
    ({"config.json": b"{}", "/tmp/absolute.txt": b"x"}, {}, "/tmp/absolute.txt"),
    ({"config.json": b"{}"}, {"weights.bin": "../../outside"}, "../../outside"),
])
def test_an_archive_member_outside_the_folder_is_refused(s3: object, cache: Path, tmp_path: Path,
                                                         members: dict[str, bytes], links: dict[str, str],
                                                         refused: str) -> None:
    s3.put_object(Bucket=BUCKET, Key="evil/model.tar.gz", Body=tar_gz(members, links))  # type: ignore[attr-defined]
    uri = f"s3://{BUCKET}/evil/model.tar.gz"
    with pytest.raises(EvalInputError) as caught:
        resolve_model_files(uri)
    assert uri in str(caught.value) and refused in str(caught.value)
    assert not (cache.parent / "escaped.txt").exists() and not (cache / "escaped.txt").exists()
    assert [p.name for p in cache.iterdir() if not p.name.startswith(".")] == []  # no copy, nothing half-written
    assert not [p for p in cache.iterdir() if ".tmp-" in p.name]


@pytest.mark.parametrize("uri", [f"s3://{BUCKET}/nothing/here/", f"s3://{BUCKET}/nothing/model.tar.gz",
                                 "s3://no-such-bucket/llm/"])
def test_a_missing_key_is_an_error_naming_the_uri(s3: object, cache: Path, uri: str) -> None:
    with pytest.raises(EvalInputError) as caught:
        LocalSampler(uri)
    assert uri in str(caught.value)


def test_two_processes_resolving_at_once_leave_one_complete_copy(tiny_model_dir: str, s3: object,
                                                                 cache: Path) -> None:
    upload_folder(s3, tiny_model_dir, "llm/race/")
    uri = f"s3://{BUCKET}/llm/race/"
    script = ("import sys; from eval_pipeline.inference.model_files import resolve_model_files; "
              "print(resolve_model_files(sys.argv[1]))")
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    workers = [subprocess.Popen([sys.executable, "-c", script, uri], stdout=subprocess.PIPE, text=True, env=env,
                                cwd=REPO_ROOT) for _ in range(2)]
    outputs = [worker.communicate(timeout=120)[0].strip() for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0]
    assert outputs[0] == outputs[1]
    assert [p.name for p in cache.iterdir() if not p.name.startswith(".")] == [Path(outputs[0]).name]
    assert not [p for p in cache.iterdir() if ".tmp-" in p.name]
    assert files_of(outputs[0]) == files_of(tiny_model_dir)


def test_a_sagemaker_package_with_uncompressed_model_data_points_at_its_prefix(aws_env: str,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER", aws_env)
    sagemaker = boto3.client("sagemaker", region_name="us-east-1")
    sagemaker.create_model_package_group(ModelPackageGroupName="uncompressed")
    sagemaker.create_model_package(
        ModelPackageGroupName="uncompressed", ModelApprovalStatus="Approved",
        InferenceSpecification={"Containers": [{
            "Image": "123.dkr.ecr.us-east-1.amazonaws.com/vllm:1",
            "ModelDataSource": {"S3DataSource": {"S3Uri": f"s3://{BUCKET}/raw/v1", "S3DataType": "S3Prefix",
                                                 "CompressionType": "None"}}}],
            "SupportedContentTypes": ["application/json"], "SupportedResponseMIMETypes": ["application/json"]})
    source = SageMakerPackageGroup("uncompressed", "us-east-1")
    assert source.location("uncompressed-v1", sagemaker) == f"s3://{BUCKET}/raw/v1/"  # not the container image


# --- MLflow ------------------------------------------------------------------------------------------------------


def register(client: MlflowClient, name: str, folder: str) -> str:
    """Log ``folder`` as a run's ``model`` artifacts and register it as a new version of ``name``; its run id."""
    experiment = client.get_experiment_by_name("checkpoints").experiment_id  # type: ignore[union-attr]
    run = client.create_run(experiment)
    client.log_artifacts(run.info.run_id, folder, "model")
    client.set_terminated(run.info.run_id)
    client.create_model_version(name, f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)
    return run.info.run_id


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: str) -> tuple[str, MlflowClient, str]:
    """A SQLite MLflow store (one per module: creating one takes seconds) with the tiny model logged to a run and
    registered as ``tiny`` version 1, alias ``champion``; returns (tracking URI, client, run id)."""
    folder = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_experiment("checkpoints", artifact_location=str(folder / "artifacts"))
    client.create_registered_model("tiny")
    run_id = register(client, "tiny", tiny_model_dir)
    client.set_registered_model_alias("tiny", "champion", "1")
    return uri, client, run_id


def test_mlflow_uris_load_exactly_as_the_local_folder(registry: tuple[str, MlflowClient, str], tiny_model_dir: str,
                                                      cache: Path) -> None:
    uri, _client, run_id = registry
    expected = answers(tiny_model_dir)
    for model in ("models:/tiny/1", "models:/tiny@champion", "models:/tiny/latest", f"runs:/{run_id}/model"):
        local = resolve_model_files(model, tracking_uri=uri)
        assert files_of(local) == files_of(tiny_model_dir), model
        assert answers(model, tracking_uri=uri) == expected, model
    # the pinned version and its alias share one copy; the run path is another
    assert len([p for p in cache.iterdir() if not p.name.startswith(".")]) == 2


def test_the_pipelines_tracking_uri_is_the_default(registry: tuple[str, MlflowClient, str], tiny_model_dir: str,
                                                   cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", registry[0])
    assert files_of(resolve_model_files("models:/tiny/1")) == files_of(tiny_model_dir)


def test_an_alias_moved_resolves_to_the_new_version_and_a_copy_is_reused(
        registry: tuple[str, MlflowClient, str], tiny_model_dir: str, tmp_path: Path, cache: Path) -> None:
    uri, client, _run_id = registry
    client.create_registered_model("moving")
    register(client, "moving", tiny_model_dir)
    client.set_registered_model_alias("moving", "champion", "1")
    first = resolve_model_files("models:/moving@champion", tracking_uri=uri)
    copies = {p.name: p.stat().st_mtime_ns for p in cache.iterdir()}
    assert resolve_model_files("models:/moving/1", tracking_uri=uri) == first
    assert {p.name: p.stat().st_mtime_ns for p in cache.iterdir()} == copies  # nothing new written

    retrained = retrain(tiny_model_dir, tmp_path / "retrained")
    register(client, "moving", retrained)
    client.set_registered_model_alias("moving", "champion", "2")
    moved = resolve_model_files("models:/moving@champion", tracking_uri=uri)
    assert moved != first and files_of(moved) == files_of(retrained)
    assert answers("models:/moving@champion", tracking_uri=uri) == answers(retrained)
    assert answers(retrained) != answers(tiny_model_dir)  # the two versions are told apart


def test_an_mlflow_transformers_model_loads_with_its_tokenizer(registry: tuple[str, MlflowClient, str],
                                                               tiny_model_dir: str, tmp_path: Path,
                                                               cache: Path) -> None:
    """``mlflow.transformers`` keeps the weights in ``model/`` and the tokenizer in ``components/tokenizer/`` beside
    an ``MLmodel`` file (its layout, written here by hand: logging through mlflow.transformers takes most of a
    minute); both load from one folder."""
    uri, client, _run_id = registry
    layout = tmp_path / "logged"
    (layout / "model").mkdir(parents=True)
    (layout / "components" / "tokenizer").mkdir(parents=True)
    (layout / "MLmodel").write_text("flavors:\n  transformers:\n    task: text-generation\n", encoding="utf-8")
    for name, body in files_of(tiny_model_dir).items():
        part = "components/tokenizer" if name.startswith(("tokenizer", "chat_template", "special")) else "model"
        (layout / part / name).write_bytes(body)
    client.create_registered_model("hf-layout")
    register(client, "hf-layout", str(layout))
    local = resolve_model_files("models:/hf-layout/1", tracking_uri=uri)
    assert Path(local).name == "model" and files_of(local) == files_of(tiny_model_dir)
    assert answers("models:/hf-layout/1", tracking_uri=uri) == answers(tiny_model_dir)


@pytest.mark.parametrize("model", ["models:/tiny/9", "models:/missing/1", "models:/tiny@nosuch",
                                   "runs:/0123456789abcdef/model"])
def test_a_missing_mlflow_model_is_an_error_naming_the_uri(registry: tuple[str, MlflowClient, str], cache: Path,
                                                           model: str) -> None:
    with pytest.raises(EvalInputError) as caught:
        LocalSampler(model, tracking_uri=registry[0])
    assert model in str(caught.value)


# --- end to end: a checkpoint sensor's partition evaluated from S3 ---------------------------------------------------


@pytest.mark.slow  # a Dagster run of the suite: ~30 s here
def test_an_s3_checkpoint_found_by_the_sensor_is_loaded_and_evaluated(tiny_model_dir: str, s3: object, cache: Path,
                                                                     eval_home: Path, tmp_path: Path) -> None:
    """The S3-prefix sensor finds a new tiny checkpoint; its partition's run loads it from S3 and evaluates it (the
    answers those of the same files loaded from the local folder). A checkpoint whose files vanish before its run
    fails the generation step with the URI named, and writes no table."""
    import dagster as dg

    from eval_pipeline.errors import input_error_in
    from eval_pipeline.instance import local_instance
    from eval_pipeline.resources import GenerationCacheResource, MlflowTrackingResource, ParquetIOManager
    from eval_pipeline.suite_definitions import build_definitions

    prompts = PROMPTS[:3]
    expected = LocalSampler(tiny_model_dir, device="cpu").generate(requests_for(prompts),
                                                                   GenerationParams(max_tokens=8))
    data = tmp_path / "data"
    data.mkdir()
    references = [expected[0].output, "no such answer", "none either"]  # the first one is matched exactly
    (data / "qa.jsonl").write_text("".join(json.dumps({"id": f"s{i}", "prompt": p, "referenceResponse": r}) + "\n"
                                           for i, (p, r) in enumerate(zip(prompts, references, strict=True))))
    (data / "base.jsonl").write_text("".join(json.dumps({"sample_id": f"s{i}", "response": "x"}) + "\n"
                                             for i in range(len(prompts))))
    path = tmp_path / "evals" / "ckpt.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump({
        "suite": "ckpt", "dataset": {"uri": str(data / "qa.jsonl")}, "schedule": None, "scorers": ["exact_match"],
        "models": [{"name": "base", "backend": "precomputed", "responses": str(data / "base.jsonl")}],
        "generation": {"max_tokens": 8, "temperature": 0.0},
        "watch": {"s3": f"s3://{BUCKET}/ckpts", "backend": "local"}}, sort_keys=False))
    upload_folder(s3, tiny_model_dir, "ckpts/step-1/")
    s3.put_object(Bucket=BUCKET, Key="ckpts/step-2/config.json", Body=b"{}")  # type: ignore[attr-defined]

    outputs = tmp_path / "outputs"
    definitions = build_definitions([load_suite(path)], {
        "io_manager": ParquetIOManager(base_path=str(outputs)),
        "generation_cache": GenerationCacheResource(path=str(tmp_path / "cache.sqlite")),
        "judge_cache": GenerationCacheResource(path=str(tmp_path / "judge.sqlite")),
        "mlflow": MlflowTrackingResource(tracking_uri=f"sqlite:///{tmp_path / 'runs.db'}")})
    instance = local_instance()
    tick = definitions.resolve_sensor_def("ckpt_new_checkpoints").evaluate_tick(
        dg.build_sensor_context(instance=instance, instance_ref=instance.get_ref(), definitions=definitions))
    for request in tick.dynamic_partitions_requests:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    runs = {request.partition_key: request for request in tick.run_requests}
    assert sorted(runs) == ["step-1", "step-2"]
    assert runs["step-1"].tags["eval/checkpoint_uri"] == f"s3://{BUCKET}/ckpts/step-1/"
    assert load_suite(path).model("step-1").model == runs["step-1"].tags["eval/checkpoint_uri"]  # what loads

    job = definitions.resolve_job_def("ckpt_eval")
    result = job.execute_in_process(instance=instance, partition_key="step-1", tags=runs["step-1"].tags)
    assert result.success
    generations = result.asset_value(dg.AssetKey(["ckpt", "generations"])).sort_values("sample_id")
    assert list(generations["output"]) == [c.output for c in expected]
    assert list(generations["tokens_out"]) == [c.tokens_out for c in expected]
    metrics = result.asset_value(dg.AssetKey(["ckpt", "metrics"]))
    exact = metrics[(metrics["metric"] == "exact_match") & metrics["breakdown_key"].isna()]
    assert list(exact["value"]) == pytest.approx([1 / 3]) and list(exact["n"]) == [3]

    s3.delete_object(Bucket=BUCKET, Key="ckpts/step-2/config.json")  # type: ignore[attr-defined]
    failed = job.execute_in_process(instance=instance, partition_key="step-2", tags=runs["step-2"].tags,
                                    raise_on_error=False)
    assert not failed.success
    [failure] = [event for event in failed.all_events if event.is_step_failure]
    reason = input_error_in(failure.step_failure_data.error)
    assert reason is not None and f"s3://{BUCKET}/ckpts/step-2/" in reason
    assert not list(outputs.rglob("step-2*"))  # no partial numbers
