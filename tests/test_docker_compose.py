"""docker-compose.yml cannot run here (no container engine), so these tests check
what would make `docker compose up` fail or run half a stack: files it mounts or
builds from that do not exist, services it names that are not defined, and
Prometheus/Grafana pointing at services or ports that are not there."""

from __future__ import annotations

import hashlib
import re
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

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


# -- docker-compose.secure.yml (issue 15), layered over docker-compose.yml ----------------------------

SECURE_FILE = ROOT / "docker-compose.secure.yml"
SECRETS = "/secrets"


class _ComposeLoader(yaml.SafeLoader):
    """YAML with compose's merge tags (``!override``/``!reset``), read as the value they carry."""


for _tag in ("!override", "!reset"):
    _ComposeLoader.add_constructor(
        _tag, lambda loader, node: (loader.construct_sequence(node) if isinstance(node, yaml.SequenceNode)
                                    else loader.construct_mapping(node) if isinstance(node, yaml.MappingNode)
                                    else loader.construct_scalar(node)))


@pytest.fixture(scope="module")
def secure() -> dict[str, Any]:
    with SECURE_FILE.open(encoding="utf-8") as f:
        data = yaml.load(f, Loader=_ComposeLoader)  # noqa: S506 (a SafeLoader subclass)
    assert isinstance(data, dict) and isinstance(data.get("services"), dict)
    return data


@pytest.fixture(scope="module")
def secrets_made(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What deploy/compose/secure-init.sh makes, run here into a folder (as a user: no chown)."""
    out = tmp_path_factory.mktemp("compose-secrets")
    env = {"PATH": "/usr/bin:/bin", "SECRETS_DIR": str(out / "secrets"), "CLICKHOUSE_USERS_DIR": str(out / "users")}
    subprocess.run(["bash", str(ROOT / "deploy/compose/secure-init.sh")], env=env, check=True, capture_output=True)
    return out


def _in_secrets(made: Path, path: str) -> Path:
    assert path.startswith(SECRETS + "/"), path
    return made / "secrets" / path[len(SECRETS) + 1:]


def test_secure_overrides_only_known_services_and_declares_its_volumes(
        secure: dict[str, Any], services: dict[str, dict[str, Any]], compose: dict[str, Any]) -> None:
    new = set(secure["services"]) - set(services)
    assert new == {"secure-init", "kafka-access"}
    declared = set(compose.get("volumes") or {}) | set(secure.get("volumes") or {})
    for name, service in secure["services"].items():
        for kind, source, _ in _mounts(service):
            if kind == "volume":
                assert source in declared, f"{name} mounts undeclared volume {source}"
            else:
                assert (ROOT / source).exists(), f"{name} mounts {source}, which does not exist"
        for port in service.get("ports", []):
            assert re.match(r"^127\.0\.0\.1:\d+:\d+$", str(port)), f"{name} publishes {port} beyond this machine"
    for name in new:
        assert secure["services"][name]["image"] == services["ingest"]["image"]  # the runstream image


def _env(service: dict[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in service.get("environment", {}).items()}


@pytest.mark.parametrize(("name", "principal", "user"), [
    ("ingest", "runstream-ingest", "runstream_writer"),
    ("server", "runstream-producer", "runstream_reader"),
    ("exporter", "runstream-exporter", "runstream_reader"),
])
def test_each_process_connects_securely_as_its_own_principal(secure: dict[str, Any], secrets_made: Path,
                                                              name: str, principal: str, user: str) -> None:
    from schemas.settings import ExporterSettings, IngestSettings, WorkspaceSettings

    service = secure["services"][name]
    env = _env(service)
    assert env["RUNSTREAM_KAFKA"] == "kafka:9096" and env["RUNSTREAM_KAFKA_SECURITY"] == "SASL_SSL"
    assert env["RUNSTREAM_KAFKA_USER"] == principal
    url = urlsplit(env["RUNSTREAM_CLICKHOUSE"])
    assert (url.scheme, url.username, url.password, url.hostname, url.port) == (
        "clickhouses", user, None, "clickhouse", 9440)
    assert "kafka-access" in service["depends_on"]  # credentials and ACLs exist before it connects
    # Passwords only as files the init job made, readable by the runstream user alone; none inline.
    assert not any(k.endswith("PASSWORD") for k in env), env
    files = {k: _in_secrets(secrets_made, v) for k, v in env.items() if k.endswith(("_FILE", "CA_FILE"))}
    assert files["RUNSTREAM_KAFKA_PASSWORD_FILE"].name == f"{principal}.password"
    assert files["RUNSTREAM_CLICKHOUSE_PASSWORD_FILE"].name == f"{user}.password"
    for path in files.values():
        assert path.is_file(), path
    assert _in_secrets(secrets_made, dict(parse_qsl(url.query))["ca_certs"]).is_file()
    assert not any("password" in part.lower() for part in _command(service))
    # The variables are settings runstream knows, and they build that process's settings.
    cls = {"ingest": IngestSettings, "server": WorkspaceSettings, "exporter": ExporterSettings}[name]
    real = {k: str(_in_secrets(secrets_made, v)) if k.endswith("_FILE") else v for k, v in env.items()}
    settings = cls.resolve(env=real)
    assert settings.kafka_client_options()["sasl_plain_username"] == principal
    assert settings.clickhouse_password is not None


def test_secure_kafka_listens_to_clients_only_with_sasl_ssl(secure: dict[str, Any], secrets_made: Path) -> None:
    env = _env(secure["services"]["kafka"])
    protocols = dict(item.split(":") for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    for listener in env["KAFKA_LISTENERS"].split(","):
        label, _, address = listener.partition("://")
        if protocols[label] == "PLAINTEXT":
            assert address.startswith("127.0.0.1:"), f"{listener} is plaintext beyond the broker's loopback"
        else:
            assert protocols[label] == "SASL_SSL", listener
    assert "SSL://" not in env["KAFKA_LISTENERS"] + env["KAFKA_ADVERTISED_LISTENERS"]  # see the file's comment
    assert "SECURE://kafka:9096" in env["KAFKA_ADVERTISED_LISTENERS"]
    assert env["KAFKA_AUTHORIZER_CLASS_NAME"].endswith("StandardAuthorizer")
    assert env["KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND"] == "false"
    assert _in_secrets(secrets_made, env["KAFKA_SSL_KEYSTORE_LOCATION"]).is_file()
    access = secure["services"]["kafka-access"]
    assert access["network_mode"] == "service:kafka" and "127.0.0.1:9094" in access["command"]


def test_secure_clickhouse_users_and_tls(secure: dict[str, Any], secrets_made: Path) -> None:
    import xml.etree.ElementTree as ET

    clickhouse = secure["services"]["clickhouse"]
    assert clickhouse["ports"] == ["127.0.0.1:9440:9440"]  # !override: no plaintext port on the host
    tls = ET.parse(ROOT / "deploy/compose/clickhouse-tls.xml").getroot()
    assert tls.findtext("tcp_port_secure") == "9440"
    for tag in ("certificateFile", "privateKeyFile"):
        assert _in_secrets(secrets_made, tls.findtext(f"openSSL/server/{tag}") or "").is_file()
    users = ET.parse(secrets_made / "users" / "runstream-users.xml").getroot().find("users")
    assert users is not None
    assert [ip.text for ip in users.findall("default/networks/ip")] == ["::1", "127.0.0.1"]
    grants = {u: " ".join(q.text or "" for q in users.findall(f"{u}/grants/query"))
              for u in ("runstream_writer", "runstream_reader")}
    # Each grant is on the runstream database, or reads system.parts (table health; nothing of other databases).
    for user, text in grants.items():
        for grant in filter(None, (g.strip() for g in text.split("GRANT "))):
            assert grant.endswith("ON runstream.*") or grant == "SELECT ON system.parts", (user, grant)
    assert "INSERT" not in grants["runstream_reader"] and "ALTER" not in grants["runstream_reader"]
    assert "INSERT" in grants["runstream_writer"]
    for user in grants:
        digest = users.findtext(f"{user}/password_sha256_hex")
        password = (secrets_made / "secrets" / "runstream" / f"{user}.password").read_text().strip()
        assert digest == hashlib.sha256(password.encode()).hexdigest()


def test_secure_grafana_reads_as_the_reader_over_tls(secure: dict[str, Any], secrets_made: Path) -> None:
    mounted = {target: source for _, source, target in _mounts(secure["services"]["grafana"])}
    folder = ROOT / mounted["/etc/grafana/provisioning/datasources"]
    sources = {s["uid"]: s for s in _load(folder / "datasources.yml")["datasources"]}
    plain = {s["uid"] for s in _load(ROOT / "deploy/grafana/provisioning/datasources/datasources.yml")["datasources"]}
    assert set(sources) == plain  # the dashboards find their data sources by uid
    clickhouse = sources["clickhouse"]
    assert (clickhouse["jsonData"]["username"], clickhouse["jsonData"]["port"], clickhouse["jsonData"]["secure"]) == (
        "runstream_reader", 9440, True)
    for value in clickhouse["secureJsonData"].values():
        path = re.fullmatch(r"\$__file\{(.+)\}", value)
        assert path is not None and _in_secrets(secrets_made, path[1]).is_file(), value


def test_secure_init_files_belong_to_one_image_user_each() -> None:
    script = (ROOT / "deploy/compose/secure-init.sh").read_text(encoding="utf-8")
    for folder in ("kafka", "clickhouse", "runstream", "grafana"):
        assert re.search(rf'chown -R "\$\w+_UID" "\$S/{folder}"', script), folder
    assert "umask 077" in script and "echo" not in script.replace('echo "secure-init:', "")
