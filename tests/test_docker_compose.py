"""docker-compose.yml cannot run here (no container engine), so these tests check
what would make `docker compose up` fail or run half a stack: files it mounts or
builds from that do not exist, services it names that are not defined, and
Prometheus/Grafana pointing at services or ports that are not there."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"


def _load(path: Path) -> Any:
    with path.open(encoding="utf-8") as f:
        return yaml.safe_load(f)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = _load(COMPOSE_FILE)
    assert isinstance(data, dict) and isinstance(data.get("services"), dict), "no services in docker-compose.yml"
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def _mounts(service: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(type, source, target) of each volume entry, short or long syntax."""
    mounts = []
    for entry in service.get("volumes", []):
        if isinstance(entry, str):
            source, target = entry.split(":")[:2]
            kind = "bind" if source.startswith((".", "/", "~")) else "volume"
            mounts.append((kind, source, target))
        else:
            mounts.append((entry["type"], entry.get("source", ""), entry["target"]))
    return mounts


def _command(service: dict[str, Any]) -> list[str]:
    command = service.get("command", [])
    return command.split() if isinstance(command, str) else [str(part) for part in command]


def test_every_service_has_an_image_or_a_build(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        assert "image" in service or "build" in service, name


def test_pulled_images_are_pinned(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        if "build" in service:
            continue
        image = service["image"]
        tag = image.rpartition(":")[2] if ":" in image.rpartition("/")[2] else ""
        assert tag and tag != "latest", f"{name}: pin a version, not {image!r}"


def test_bind_mounted_host_paths_exist(services: dict[str, dict[str, Any]]) -> None:
    binds = 0
    for name, service in services.items():
        for kind, source, _ in _mounts(service):
            if kind == "bind":
                binds += 1
                assert (ROOT / source).exists(), f"{name} mounts {source}, which does not exist"
    assert binds, "expected the Prometheus and Grafana configuration to be bind-mounted"


def test_named_volumes_are_declared(compose: dict[str, Any], services: dict[str, dict[str, Any]]) -> None:
    declared = set(compose.get("volumes") or {})
    for name, service in services.items():
        for kind, source, _ in _mounts(service):
            if kind == "volume":
                assert source in declared, f"{name} uses volume {source}, not declared under volumes:"


def test_depends_on_names_defined_services(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for dependency in service.get("depends_on", []):
            assert dependency in services, f"{name} depends on {dependency}, which is not a service"
            assert dependency != name


def test_build_context_dockerfile_and_copied_paths_exist(services: dict[str, dict[str, Any]]) -> None:
    built = {name: s["build"] for name, s in services.items() if "build" in s}
    assert {"ingest", "exporter"} <= set(built)
    for name, build in built.items():
        context = ROOT / (build if isinstance(build, str) else build.get("context", "."))
        dockerfile = context / ("Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile"))
        assert context.is_dir(), f"{name}: build context {context} is missing"
        assert dockerfile.is_file(), f"{name}: {dockerfile} is missing"
        for line in dockerfile.read_text(encoding="utf-8").splitlines():
            if line.startswith("COPY ") and "--from" not in line:
                for source in line.split()[1:-1]:
                    assert (context / source).exists(), f"{dockerfile.name} copies {source}, which does not exist"


def test_workers_run_the_runstream_commands(services: dict[str, dict[str, Any]]) -> None:
    ingest, exporter = _command(services["ingest"]), _command(services["exporter"])
    assert ingest[0] == "ingest"
    assert exporter[0] == "exporter"
    assert services["ingest"]["deploy"]["replicas"] >= 2
    for command in (ingest, exporter):
        kafka = command[command.index("--kafka") + 1]
        clickhouse = urlsplit(command[command.index("--clickhouse") + 1])
        assert kafka.partition(":")[0] in services
        assert clickhouse.hostname in services


def test_prometheus_scrapes_defined_services_on_their_metrics_ports(services: dict[str, dict[str, Any]]) -> None:
    config_path = ROOT / "deploy" / "prometheus" / "prometheus.yml"
    config = _load(config_path)
    targets: list[tuple[str, int]] = []
    for job in config["scrape_configs"]:
        for static in job.get("static_configs", []):
            for target in static["targets"]:
                host, _, port = target.rpartition(":")
                targets.append((host, int(port)))
        for dns in job.get("dns_sd_configs", []):
            targets.extend((host, int(dns["port"])) for host in dns["names"])
    assert {host for host, _ in targets} >= {"ingest", "exporter"}
    for host, port in targets:
        assert host in services, f"Prometheus scrapes {host}, which is not a service"
        assert str(port) in _command(services[host]), f"{host} does not serve metrics on {port}"

    for rule_file in config.get("rule_files", []):
        assert (config_path.parent / rule_file).is_file(), f"rule file {rule_file} is missing"
    assert isinstance(_load(ROOT / "deploy" / "prometheus" / "alerts.yml")["groups"], list)


def test_grafana_points_at_prometheus_and_the_mounted_dashboards(services: dict[str, dict[str, Any]]) -> None:
    provisioning = ROOT / "deploy" / "grafana" / "provisioning"
    for source in _load(provisioning / "datasources" / "datasources.yml")["datasources"]:
        # The ClickHouse plugin takes jsonData.host (native protocol) instead of a URL.
        host = urlsplit(source["url"]).hostname if "url" in source else source["jsonData"]["host"]
        assert host in services, source

    mounted = {Path(source).as_posix(): target for _, source, target in _mounts(services["grafana"])}
    dashboards_target = mounted["deploy/grafana/dashboards"]
    for provider in _load(provisioning / "dashboards" / "dashboards.yml")["providers"]:
        assert provider["options"]["path"] == dashboards_target


def test_host_ports_are_bound_to_loopback(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for port in service.get("ports", []):
            assert re.match(r"^127\.0\.0\.1:\d+:\d+$", str(port)), f"{name} publishes {port} beyond this machine"


def test_grafana_preinstalls_every_plugin_data_source(services: dict[str, dict[str, Any]]) -> None:
    core = {"prometheus", "loki", "tempo", "postgres", "mysql", "elasticsearch", "influxdb", "graphite"}
    sources = _load(ROOT / "deploy/grafana/provisioning/datasources/datasources.yml")["datasources"]
    plugins = {s["type"] for s in sources} - core
    preinstalled = set(str(services["grafana"]["environment"].get("GF_PLUGINS_PREINSTALL", "")).split(","))
    assert plugins <= preinstalled, f"Grafana would not know the data source types {plugins - preinstalled}"


def test_cluster_profile_is_consistent(services: dict[str, dict[str, Any]]) -> None:
    import xml.etree.ElementTree as ET
    from urllib.parse import parse_qsl

    cluster_xml = ET.parse(ROOT / "deploy" / "clickhouse" / "cluster.xml").getroot()
    keeper_xml = ET.parse(ROOT / "deploy" / "clickhouse" / "keeper.xml").getroot()
    in_profile = {name for name, s in services.items() if "cluster" in s.get("profiles", [])}
    # Every replica of remote_servers is a service of the profile, recognisable by its hostname and macros.
    shards = cluster_xml.find("remote_servers/runstream").findall("shard")
    assert len(shards) == 2
    for number, shard in enumerate(shards, start=1):
        assert shard.findtext("internal_replication") == "true"
        for replica in shard.findall("replica"):
            service = services[replica.findtext("host")]
            assert replica.findtext("host") in in_profile
            assert service["hostname"] == replica.findtext("host")
            assert service["environment"]["RUNSTREAM_SHARD"] == str(number)
            assert service["environment"]["RUNSTREAM_REPLICA"] == replica.findtext("host")
    for node in cluster_xml.findall("zookeeper/node"):
        assert node.findtext("host") in in_profile
    raft = [s.findtext("hostname") for s in keeper_xml.findall("keeper_server/raft_configuration/server")]
    assert sorted(raft) == sorted(n.findtext("host") for n in cluster_xml.findall("zookeeper/node"))
    # Three brokers, one quorum; the cluster workers reach all of it by one URL and answer to the
    # names Prometheus scrapes.
    voters = {f"kafka-{v.split('@')[0]}" for v in
              services["kafka-1"]["environment"]["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")}
    assert voters == {"kafka-1", "kafka-2", "kafka-3"} <= in_profile
    for broker in sorted(voters):
        environment = services[broker]["environment"]
        assert environment["KAFKA_NODE_ID"] == broker.removeprefix("kafka-")
        assert environment["KAFKA_DEFAULT_REPLICATION_FACTOR"] == "3"
        assert environment["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "3"
        assert environment["KAFKA_MIN_INSYNC_REPLICAS"] == "2"
        assert environment["KAFKA_UNCLEAN_LEADER_ELECTION_ENABLE"] == "false"
    for name, alias in (("ingest-cluster", "ingest"), ("exporter-cluster", "exporter")):
        command = _command(services[name])
        assert {b.partition(":")[0] for b in command[command.index("--kafka") + 1].split(",")} == voters
        url = urlsplit(command[command.index("--clickhouse") + 1])
        query = dict(parse_qsl(url.query))
        assert query["cluster"] == "runstream"
        hosts = {url.hostname} | {h.partition(":")[0] for h in query["alt_hosts"].split(",")}
        assert hosts == {r.findtext("host") for s in shards for r in s.findall("replica")}
        assert services[name]["networks"]["default"]["aliases"] == [alias]
        assert name in in_profile
    assert not {"kafka", "clickhouse", "ingest", "exporter"} & in_profile
