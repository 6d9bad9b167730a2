"""Task images: discovery, naming, records, and loading into kind only where a node lacks the ID.

The kind CLI is a RecordingRunner and the nodes answer `crictl images -o json` from recorded
output (tests/fixtures/crictl/): the boundary that cannot run here. Everything else is the
product's code.
"""

from __future__ import annotations

import dataclasses

import json
import re
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest
from fakes import RecordingRunner, fail, ok

from sandbox.adapters.docker_images import ImageInfo, save_params, short_name
from sandbox.adapters.kind import KindCli
from sandbox.cli.images import human_size, parse_build_args
from sandbox.config import Settings
from sandbox.core import images
from sandbox.errors import ClusterError, CommandFailed, ConfigError, ImageBuildError, UsageError
from sandbox.progress import SilentReporter

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "crictl"
NODES = ["sbx-control-plane", "sbx-worker", "sbx-worker2"]  # kind-config.yaml; worker2 is the virtual node
WORKERS = NODES[1:]
REPO = Path(__file__).resolve().parents[2]
CONTENT_DIGEST_ERROR = (
    'ERROR: failed to load image: command "docker exec --privileged -i sbx-worker2 ctr '
    '--namespace=k8s.io images import --all-platforms --digests --snapshotter=overlayfs -" '
    "failed with error: exit status 1\nCommand Output: ctr: content digest "
    "sha256:3b0e4a6b7a5c4d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e: not found"
)


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


class NodeEngine:
    """The engine as `load` uses it: local images by reference, kind nodes answering crictl."""

    def __init__(self, local: Mapping[str, ImageInfo], nodes: Mapping[str, str]) -> None:
        self.local = dict(local)
        self.nodes = dict(nodes)
        self.saved: list[tuple[str, Path]] = []
        self.execs: list[tuple[str, tuple[str, ...]]] = []
        self.removed: list[str] = []

    def inspect(self, reference: str) -> ImageInfo | None:
        return self.local.get(reference)

    def build(self, *args: object, **kwargs: object) -> str:
        raise AssertionError("nothing should be built here")

    def save(self, reference: str, destination: Path) -> None:
        destination.write_bytes(b"archive")
        self.saved.append((reference, destination))

    def exec(self, container: str, argv: Sequence[str]) -> str:
        self.execs.append((container, tuple(argv)))
        if container not in self.nodes:
            raise CommandFailed(["exec", container, *argv], -1, f"no container {container}")
        return self.nodes[container]

    def remove(self, reference: str) -> None:
        self.removed.append(reference)
        self.local.pop(reference, None)

    def put(self, node: str, reference: str, image_id: str) -> None:
        """What `ctr images import` does to the node's list, in crictl's own format."""
        data = json.loads(self.nodes[node])
        data["images"].append(
            {"id": image_id, "repoTags": [reference], "repoDigests": [], "size": "152430592",
             "uid": None, "username": "", "spec": None, "pinned": False}
        )
        self.nodes[node] = json.dumps(data, indent=2)


def project(tmp_path: Path, *names: str) -> Settings:
    folder = tmp_path / "images"
    for name in names:
        (folder / name).mkdir(parents=True)
        (folder / name / "Dockerfile").write_text(f"FROM python:3.12-slim\nCOPY . /app/{name}\n")
        (folder / name / "main.py").write_text(f"print({name!r})\n")
    (tmp_path / "kind-config.yaml").write_text((REPO / "kind-config.yaml").read_text())
    return Settings(project_dir=tmp_path, name="sbx", images_folders=(folder,), dags_folder=tmp_path / "dags")


def planned(settings: Settings, name: str) -> images.PlannedImage:
    return images.plan(next(i for i in images.discover(settings) if i.name == name))


def kind_loading_into(engine: NodeEngine, image_id: str, *, first: object = None) -> tuple[KindCli, RecordingRunner]:
    """A kind CLI whose `load` puts the image on the nodes named by --nodes (as kind does)."""

    def load(argv: list[str]):
        reference = argv[3] if argv[2] == "docker-image" else None
        targets = argv[argv.index("--nodes") + 1].split(",")
        for node in targets:
            engine.put(node, reference or engine.saved[-1][0], image_id)
        return ok()

    runner = RecordingRunner(strict=True)
    runner.on(r"^kind get nodes --name sbx$", ok("\n".join(NODES) + "\n"))
    runner.on(r"^kind load docker-image ", [first, load] if first is not None else load)
    runner.on(r"^kind load image-archive ", load)
    return KindCli(runner=runner), runner


# --- discovery and naming --------------------------------------------------------------------


def test_discovery_finds_folders_with_a_dockerfile_in_every_images_folder(tmp_path: Path) -> None:
    settings = project(tmp_path, "preprocess", "inference")
    extra = tmp_path / "more"
    (extra / "postprocess").mkdir(parents=True)
    (extra / "postprocess" / "Dockerfile").write_text("FROM x\n")
    (extra / "no-dockerfile").mkdir()
    settings = Settings(
        project_dir=tmp_path, images_folders=(*settings.images_folders, extra, tmp_path / "missing")
    )
    assert [i.name for i in images.discover(settings)] == ["inference", "preprocess", "postprocess"]


@pytest.mark.parametrize("bad", ["Preprocess", "my model", "-lead", "trail-"])
def test_an_image_folder_must_be_a_valid_image_name(tmp_path: Path, bad: str) -> None:
    settings = project(tmp_path, bad)
    with pytest.raises(ConfigError, match="not a valid image name") as err:
        images.discover(settings)
    assert "rename" in (err.value.hint or "")


def test_two_folders_cannot_give_the_same_name(tmp_path: Path) -> None:
    settings = project(tmp_path, "steps")
    other = tmp_path / "other" / "steps"
    other.mkdir(parents=True)
    (other / "Dockerfile").write_text("FROM x\n")
    settings = Settings(project_dir=tmp_path, images_folders=(*settings.images_folders, other.parent))
    with pytest.raises(ConfigError, match="two task images are named 'steps'"):
        images.discover(settings)


def test_unknown_names_are_a_usage_error_listing_the_known_ones(tmp_path: Path) -> None:
    found = images.discover(project(tmp_path, "alpha", "beta"))
    assert [i.name for i in images.select(found, ["beta", "beta"])] == ["beta"]
    with pytest.raises(UsageError, match="unknown task image.*gamma") as err:
        images.select(found, ["gamma"])
    assert "alpha, beta" in (err.value.hint or "")


def test_tag_is_the_context_hash_never_latest(tmp_path: Path) -> None:
    item = planned(project(tmp_path, "recommend"), "recommend")
    assert re.fullmatch(r"recommend:[0-9a-f]{12}", item.ref)
    assert item.ref == f"recommend:{item.context_hash[:12]}"
    assert item.canonical_ref == f"docker.io/library/{item.ref}"
    assert short_name(item.canonical_ref) == item.ref
    assert short_name(f"localhost/{item.ref}") == item.ref  # podman's spelling
    assert images.labels_for(item) == {
        "sandbox.task-image": "recommend", "sandbox.context-hash": item.context_hash,
    }


def test_build_args_are_part_of_the_tag(tmp_path: Path) -> None:
    image = images.discover(project(tmp_path, "recommend"))[0]
    assert images.plan(image, {"BASE_IMAGE": "a"}).ref != images.plan(image, {"BASE_IMAGE": "b"}).ref


def test_no_images_is_a_clear_error_for_build_but_not_for_up(tmp_path: Path) -> None:
    settings = project(tmp_path)
    with pytest.raises(ConfigError, match="no task images found"):
        images.build(settings, SilentReporter(), NodeEngine({}, {}))
    kind, runner = kind_loading_into(NodeEngine({}, {}), "sha256:x")
    nothing = images.build_and_load(settings, SilentReporter(), client=NodeEngine({}, {}), kind=kind)
    assert not nothing.built and not nothing.loaded
    assert runner.calls == []


# --- the record DAG files read ---------------------------------------------------------------


def test_record_merges_drops_vanished_images_and_is_world_readable(tmp_path: Path) -> None:
    settings = project(tmp_path, "a", "b")
    result = images.BuildResult("a", "a:111111111111", "sha256:1", "1" * 64, True, 1.0, 10, "2026-01-01T00:00:00Z")
    images.write_dag_record(settings, [result], ["a", "b", "gone"])
    images.write_dag_record(
        settings, [images.BuildResult("b", "b:222222222222", "sha256:2", "2" * 64, True, 1.0, 10, "t")], ["a", "b"]
    )
    path = images.dag_record_path(settings)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    data = json.loads(path.read_text())
    assert data["version"] == 1
    assert {k: v["image"] for k, v in data["images"].items()} == {"a": "a:111111111111", "b": "b:222222222222"}
    assert not list(path.parent.glob(".sandbox-images.*.tmp"))


# --- node inventory --------------------------------------------------------------------------


def test_crictl_output_parses_into_node_images() -> None:
    parsed = images.parse_crictl_images(fixture("images-fresh-node.json"))
    assert len(parsed) == 10
    apiserver = next(i for i in parsed if "registry.k8s.io/kube-apiserver:v1.37.0" in i.repo_tags)
    assert apiserver.id.startswith("sha256:") and apiserver.size == 98059744
    assert len(apiserver.repo_tags) == 2
    with pytest.raises(ClusterError, match="unreadable"):
        images.parse_crictl_images("crictl: command not found")


def test_node_has_compares_image_ids_under_the_tag() -> None:
    loaded = images.parse_crictl_images(fixture("images-with-recommend.json"))
    ref = "docker.io/library/recommend:3f2a9c1b7d4e"
    new_id = "sha256:7d1b5c0e4a2f9b8c3d6e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c"
    assert images.node_has(loaded, new_id, ref)
    assert not images.node_has(loaded, "sha256:" + "e" * 64, ref)  # same tag, other image: reload
    assert not images.node_has(loaded, new_id, "docker.io/library/recommend:000000000000")
    assert not images.node_has(images.parse_crictl_images(fixture("images-fresh-node.json")), new_id, ref)


def test_node_has_accepts_the_manifest_digest_docker_reports_with_the_containerd_store() -> None:
    node = images.parse_crictl_images(fixture("images-containerd-store.json"))
    ref = "docker.io/library/recommend:3f2a9c1b7d4e"
    assert images.node_has(node, "sha256:" + "c0ffee00" * 8, ref)


def test_which_kind_load_failures_an_archive_gets_around() -> None:
    assert images.needs_archive(CommandFailed(["kind"], 1, CONTENT_DIGEST_ERROR))
    # kind runs `docker save`; with podman's images that docker cannot see:
    assert images.needs_archive(CommandFailed(["kind"], 1, 'ERROR: image: "docker.io/library/x:1" not present locally'))
    assert not images.needs_archive(CommandFailed(["kind"], 1, 'ERROR: no nodes found for cluster "sbx"'))


def test_the_archive_is_saved_for_the_engines_platform_where_the_api_takes_one() -> None:
    """kind's documented workaround for the containerd image store is `docker image save
    --platform`; the Engine API takes the parameter from 1.48, podman's compat API says 1.41."""
    assert save_params("1.51", "arm64") == {"platform": '{"os": "linux", "architecture": "arm64"}'}
    assert save_params("1.48", "amd64") == {"platform": '{"os": "linux", "architecture": "amd64"}'}
    assert save_params("1.47", "amd64") == {} and save_params("1.41", "amd64") == {}
    assert save_params("", "amd64") == {} and save_params("1.50", "") == {}


# --- load ------------------------------------------------------------------------------------


def _loaded_setup(tmp_path: Path, on_nodes: Sequence[str]) -> tuple[Settings, images.PlannedImage, NodeEngine, str]:
    settings = project(tmp_path, "recommend")
    item = planned(settings, "recommend")
    image_id = "sha256:" + "ab" * 32
    engine = NodeEngine(
        {item.canonical_ref: ImageInfo(image_id, (item.canonical_ref,), 152_000_000, "2026-11-25T12:00:00Z")},
        {node: fixture("images-fresh-node.json") for node in NODES},
    )
    for node in on_nodes:
        engine.put(node, item.canonical_ref, image_id)
    return settings, item, engine, image_id


def test_load_goes_only_to_nodes_lacking_the_image_id_then_verifies(tmp_path: Path) -> None:
    settings, item, engine, image_id = _loaded_setup(tmp_path, NODES[:2])
    # worker2 holds the same tag but another image (rebuilt locally from a newer base): reload it
    engine.put("sbx-worker2", item.canonical_ref, "sha256:" + "0d" * 32)
    kind, runner = kind_loading_into(engine, image_id)
    [result] = images.load(settings, SilentReporter(), engine, kind)
    assert runner.lines == [
        "kind get nodes --name sbx",
        f"kind load docker-image {item.canonical_ref} --name sbx --nodes sbx-worker2",
    ]
    assert result.loaded_into == ("sbx-worker2",) and result.already_on == ("sbx-worker",)
    assert not result.via_archive
    # asked every worker once (never the control plane: no task pod runs there), then the
    # loaded node again to verify
    assert [node for node, _ in engine.execs] == [*WORKERS, "sbx-worker2"]
    assert {argv for _, argv in engine.execs} == {("crictl", "images", "-o", "json")}


def test_nothing_to_load_runs_no_kind_load(tmp_path: Path) -> None:
    settings, _, engine, image_id = _loaded_setup(tmp_path, NODES)
    kind, runner = kind_loading_into(engine, image_id)
    [result] = images.load(settings, SilentReporter(), engine, kind)
    assert result.loaded_into == () and runner.lines == ["kind get nodes --name sbx"]


def test_containerd_store_error_falls_back_to_save_and_image_archive(tmp_path: Path) -> None:
    settings, item, engine, image_id = _loaded_setup(tmp_path, [])
    kind, runner = kind_loading_into(engine, image_id, first=fail(CONTENT_DIGEST_ERROR))
    [result] = images.load(settings, SilentReporter(), engine, kind)
    archive = settings.state_dir / "images" / f"recommend-{item.tag}.tar"
    assert engine.saved == [(item.canonical_ref, archive)]
    assert runner.lines[1:] == [
        f"kind load docker-image {item.canonical_ref} --name sbx --nodes {','.join(WORKERS)}",
        f"kind load image-archive {archive} --name sbx --nodes {','.join(WORKERS)}",
    ]
    assert result.via_archive and result.loaded_into == tuple(WORKERS)
    assert not archive.exists()


def test_image_load_archive_skips_docker_image_and_loads_from_an_archive(tmp_path: Path) -> None:
    """The setting the e2e uses to run the archive path on purpose: no `kind load docker-image`."""
    settings, item, engine, image_id = _loaded_setup(tmp_path, [])
    settings = dataclasses.replace(settings, image_load="archive")
    kind, runner = kind_loading_into(engine, image_id)
    reporter = SilentReporter()
    [result] = images.load(settings, reporter, engine, kind)
    archive = settings.state_dir / "images" / f"recommend-{item.tag}.tar"
    assert engine.saved == [(item.canonical_ref, archive)]
    assert runner.lines[1:] == [f"kind load image-archive {archive} --name sbx --nodes {','.join(WORKERS)}"]
    assert result.via_archive and result.loaded_into == tuple(WORKERS)
    assert any("image_load = archive" in m for m in reporter.messages)


def test_other_load_failures_are_not_papered_over(tmp_path: Path) -> None:
    settings, _, engine, image_id = _loaded_setup(tmp_path, [])
    kind, runner = kind_loading_into(engine, image_id, first=fail("ERROR: no nodes found for cluster \"sbx\""))
    with pytest.raises(CommandFailed, match="no nodes found"):
        images.load(settings, SilentReporter(), engine, kind)
    assert engine.saved == [] and not any("image-archive" in line for line in runner.lines)


def test_an_image_still_missing_after_load_is_an_error_naming_the_node(tmp_path: Path) -> None:
    settings, item, engine, image_id = _loaded_setup(tmp_path, NODES[:2])
    runner = RecordingRunner(strict=True)
    runner.on(r"^kind get nodes", ok("\n".join(NODES)))
    runner.on(r"^kind load docker-image", ok())  # exits 0 but the node never gets it
    with pytest.raises(ClusterError, match=r"not on node\(s\) sbx-worker2 \(the virtual node\) after kind load"):
        images.load(settings, SilentReporter(), engine, KindCli(runner=runner))


def test_a_cluster_without_the_virtual_node_is_refused(tmp_path: Path) -> None:
    settings, _, engine, image_id = _loaded_setup(tmp_path, [])
    runner = RecordingRunner(strict=True).on(r"^kind get nodes", ok("sbx-control-plane\nsbx-worker\n"))
    with pytest.raises(ClusterError, match="no virtual node \\(expected sbx-worker2"):
        images.load(settings, SilentReporter(), engine, KindCli(runner=runner))


def test_loading_an_unbuilt_image_says_to_build_it(tmp_path: Path) -> None:
    settings = project(tmp_path, "recommend")
    kind, _ = kind_loading_into(NodeEngine({}, {}), "sha256:x")
    with pytest.raises(ImageBuildError, match="'recommend' is not built") as err:
        images.load(settings, SilentReporter(), NodeEngine({}, {}), kind)
    assert err.value.hint == "run `sandbox build recommend`"


def test_no_cluster_is_a_cluster_error(tmp_path: Path) -> None:
    settings, _, engine, _ = _loaded_setup(tmp_path, [])
    runner = RecordingRunner(strict=True).on(r"^kind get nodes", ok("", "No kind nodes found for cluster \"sbx\".\n"))
    with pytest.raises(ClusterError, match="no kind cluster named 'sbx'"):
        images.load(settings, SilentReporter(), engine, KindCli(runner=runner))


def test_build_and_load_records_the_image_only_once_the_nodes_hold_it(tmp_path: Path) -> None:
    """`watch` and `up`: a run reading the record between the build and the load would name an
    image the virtual node lacks; a failed load leaves the previous record as it was."""
    settings, item, engine, image_id = _loaded_setup(tmp_path, [])
    record = images.dag_record_path(settings)
    kind, _ = kind_loading_into(engine, image_id, first=fail("ERROR: no nodes found for cluster \"sbx\""))
    with pytest.raises(CommandFailed):
        images.build_and_load(settings, SilentReporter(), client=engine, kind=kind, names=["recommend"])
    assert not record.exists()
    kind, _ = kind_loading_into(engine, image_id)
    images.build_and_load(settings, SilentReporter(), client=engine, kind=kind, names=["recommend"])
    assert json.loads(record.read_text())["images"]["recommend"]["image"] == item.ref


def test_second_up_with_nothing_changed_does_no_image_work(tmp_path: Path) -> None:
    settings, item, engine, image_id = _loaded_setup(tmp_path, NODES)
    kind, runner = kind_loading_into(engine, image_id)
    reporter = SilentReporter()
    result = images.build_and_load(settings, reporter, client=engine, kind=kind)
    assert not any(b.built for b in result.built) and not any(r.loaded_into for r in result.loaded)
    assert reporter.steps == [] and runner.lines == ["kind get nodes --name sbx"]
    assert json.loads(images.dag_record_path(settings).read_text())["images"]["recommend"]["image"] == item.ref


def test_status_lists_tag_size_and_nodes(tmp_path: Path) -> None:
    settings, item, engine, image_id = _loaded_setup(tmp_path, ["sbx-worker2"])
    kind, _ = kind_loading_into(engine, image_id)
    [row] = images.image_status(settings, engine, kind)
    assert (row.name, row.ref, row.built, row.size, row.nodes) == ("recommend", item.ref, True, 152_000_000, ("sbx-worker2",))
    no_kind = KindCli(runner=RecordingRunner().on(r"^kind", fail("No kind clusters found.")))
    assert images.image_status(settings, engine, no_kind)[0].nodes is None


def test_a_changed_record_touches_the_dag_files_that_read_it_and_only_those(tmp_path: Path) -> None:
    """The DAG processor re-parses a file when its mtime changes; the record is an input it
    cannot see (proved end to end in tests/integration/test_run_dag.py)."""
    import os

    settings = project(tmp_path, "recommend")
    reader = settings.dags_folder / "team" / "pipeline.py"
    reader.parent.mkdir(parents=True)
    reader.write_text("IMAGE = task_image('recommend')\n")
    other = settings.dags_folder / "plain.py"
    other.write_text("print('no images here')\n")
    for path in (reader, other):
        os.utime(path, (1_000_000_000, 1_000_000_000))
    result = images.BuildResult("recommend", "recommend:0123456789ab", "sha256:ab", "0123456789ab", True, 0.0, 1, "")
    images.write_dag_record(settings, [result], ["recommend"])
    assert reader.stat().st_mtime > 1_000_000_000 and other.stat().st_mtime == 1_000_000_000
    os.utime(reader, (1_000_000_000, 1_000_000_000))
    images.write_dag_record(settings, [result], ["recommend"])  # same content: nothing to re-parse
    assert reader.stat().st_mtime == 1_000_000_000


# --- prune -----------------------------------------------------------------------------------


def _node(id_: str, *tags: str) -> images.NodeImage:
    return images.NodeImage(id_, tags, (), 1)


def test_only_images_tagged_solely_with_superseded_content_tags_are_stale_on_a_node() -> None:
    current = {"recommend": {"docker.io/library/recommend:3f2a9c1b7d4e"}}
    system = images.parse_crictl_images(fixture("images-fresh-node.json"))
    old = _node("sha256:01", "docker.io/library/recommend:0123456789ab")
    inventory = [
        *system,
        old,
        _node("sha256:02", "docker.io/library/recommend:3f2a9c1b7d4e"),  # current
        _node("sha256:03", "docker.io/library/recommend:0123456789ab", "docker.io/library/recommend:3f2a9c1b7d4e"),
        _node("sha256:04", "docker.io/library/recommend:dev"),  # a user's own tag
        _node("sha256:05", "docker.io/library/recommend:aaaaaaaaaaaa", "docker.io/me/recommend:1"),
        _node("sha256:06", "docker.io/library/other:0123456789ab"),  # not a task image here
        _node("sha256:07"),  # untagged
    ]
    assert images.superseded_on_node(inventory, current) == [old]


def _prune_setup(tmp_path: Path) -> tuple[Settings, images.PlannedImage, NodeEngine, KindCli, str]:
    settings = project(tmp_path, "recommend")
    item = planned(settings, "recommend")
    old_ref = "recommend:0123456789ab"
    engine = NodeEngine(
        {
            item.canonical_ref: ImageInfo("sha256:" + "ab" * 32, (item.ref,), 1, ""),
            images.CANONICAL_PREFIX + old_ref: ImageInfo("sha256:" + "cd" * 32, (old_ref,), 1, ""),
            # built by another project on the same engine: never in this sandbox's history
            "docker.io/library/recommend:fedcba987654": ImageInfo("sha256:" + "ef" * 32, (), 1, ""),
        },
        {node: fixture("images-fresh-node.json") for node in NODES},
    )
    for node in WORKERS:
        engine.put(node, images.CANONICAL_PREFIX + old_ref, "sha256:" + "cd" * 32)
    engine.put("sbx-worker", item.canonical_ref, "sha256:" + "ab" * 32)
    images.remember_built(settings, [old_ref, item.ref, "gone:0123456789ab"])
    runner = RecordingRunner(strict=True).on(r"^kind get nodes --name sbx$", ok("\n".join(NODES)))
    return settings, item, engine, KindCli(runner=runner), old_ref


def test_prune_removes_superseded_tags_locally_and_from_every_node(tmp_path: Path) -> None:
    settings, item, engine, kind, old_ref = _prune_setup(tmp_path)
    result = images.prune(settings, SilentReporter(), engine, kind)
    assert engine.removed == [images.CANONICAL_PREFIX + old_ref]
    rmi = [(node, argv) for node, argv in engine.execs if argv[:2] == ("crictl", "rmi")]
    assert rmi == [(node, ("crictl", "rmi", "sha256:" + "cd" * 32)) for node in WORKERS]
    assert result.engine == (old_ref,) and result.kept == (item.ref,)
    assert result.nodes == {"sbx-control-plane": (), "sbx-worker": (old_ref,), "sbx-worker2": (old_ref,)}
    # the history forgets what went; a folder that is gone is not this command's business
    assert images.read_built(settings) == {"recommend": [item.ref], "gone": ["gone:0123456789ab"]}
    assert stat.S_IMODE(settings.state_dir.joinpath("images-built.json").stat().st_mode) == 0o600


def test_prune_keeps_what_the_dags_use_even_when_the_sources_moved_on(tmp_path: Path) -> None:
    """The record (what task_image() resolves) may name a tag the sources no longer give: built
    with other --build-arg values, or a Dockerfile edited since. Pods still ask for it."""
    settings, item, engine, kind, old_ref = _prune_setup(tmp_path)
    built = images.BuildResult("recommend", old_ref, "sha256:" + "cd" * 32, "0123456789ab", True, 0.0, 1, "")
    images.write_dag_record(settings, [built], ["recommend"])
    result = images.prune(settings, SilentReporter(), engine, kind)
    assert result.engine == () and engine.removed == []
    assert not any(argv[1] == "rmi" for _, argv in engine.execs)
    assert result.kept == tuple(sorted((item.ref, old_ref)))


def test_a_task_image_may_not_take_the_extended_airflow_images_name(tmp_path: Path) -> None:
    settings = project(tmp_path, "sandbox-airflow")
    with pytest.raises(ConfigError, match="name of the sandbox's extended Airflow image"):
        images.discover(settings)


def test_a_corrupt_build_history_reads_as_empty(tmp_path: Path) -> None:
    settings = project(tmp_path, "recommend")
    settings.state_dir.mkdir()
    for body in ('{"images": ["x"]}', "[1]", "not json"):
        (settings.state_dir / "images-built.json").write_text(body)
        assert images.read_built(settings) == {}


def test_prune_dry_run_removes_nothing(tmp_path: Path) -> None:
    settings, _, engine, kind, old_ref = _prune_setup(tmp_path)
    before = images.read_built(settings)
    result = images.prune(settings, SilentReporter(), engine, kind, dry_run=True)
    assert result.engine == (old_ref,) and result.nodes and result.nodes["sbx-worker2"] == (old_ref,)
    assert engine.removed == [] and not any(argv[1] == "rmi" for _, argv in engine.execs)
    assert images.read_built(settings) == before


def test_prune_without_a_cluster_prunes_the_engine_only(tmp_path: Path) -> None:
    settings, _, engine, _, old_ref = _prune_setup(tmp_path)
    no_kind = KindCli(runner=RecordingRunner().on(r"^kind", fail("No kind clusters found.")))
    reporter = SilentReporter()
    result = images.prune(settings, reporter, engine, no_kind)
    assert result.nodes is None and result.engine == (old_ref,) and engine.execs == []
    assert any("only local images pruned" in line for line in reporter.messages)


def test_prune_without_names_also_removes_extended_airflow_images_not_current(tmp_path: Path) -> None:
    settings, item, engine, kind, old_ref = _prune_setup(tmp_path)
    old_airflow = "sandbox-airflow:aaaaaaaaaaaa"
    engine.local[images.CANONICAL_PREFIX + old_airflow] = ImageInfo("sha256:" + "aa" * 32, (old_airflow,), 1, "")
    images.remember_built(settings, [old_airflow])
    only_recommend = images.prune(settings, SilentReporter(), engine, kind, ["recommend"], dry_run=True)
    assert old_airflow not in only_recommend.engine  # named images only
    result = images.prune(settings, SilentReporter(), engine, kind)
    assert set(result.engine) == {old_ref, old_airflow}  # no airflow_requirements: none is current
    assert result.kept == (item.ref,)


def test_build_args_come_from_settings_and_flags_add_to_them(tmp_path: Path) -> None:
    settings = project(tmp_path, "recommend")
    configured = Settings(
        project_dir=tmp_path, name="sbx", images_folders=settings.images_folders,
        build_args={"BASE_IMAGE": "a", "PIP_INDEX": "x"},
    )
    assert images.build_args_for(configured, {"BASE_IMAGE": "b"}) == {"BASE_IMAGE": "b", "PIP_INDEX": "x"}
    image = images.discover(settings)[0]
    [row] = images.image_status(configured, NodeEngine({}, {}), None)
    assert row.ref == images.plan(image, {"BASE_IMAGE": "a", "PIP_INDEX": "x"}).ref != planned(settings, "recommend").ref


# --- CLI helpers -----------------------------------------------------------------------------


def test_build_args_parse_and_reject_malformed() -> None:
    assert parse_build_args(["BASE_IMAGE=localhost/x:1", "EMPTY="]) == {"BASE_IMAGE": "localhost/x:1", "EMPTY": ""}
    with pytest.raises(UsageError, match="not KEY=VALUE"):
        parse_build_args(["BASE_IMAGE"])


def test_sizes_read_like_docker_images() -> None:
    assert [human_size(s) for s in (None, 512, 152_430_592, 2_100_000_000)] == ["-", "512 B", "152.4 MB", "2.1 GB"]
