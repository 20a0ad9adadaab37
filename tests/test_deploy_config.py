"""The deployment files agree with the code: Prometheus scrapes every role docker-compose.yml
runs, Grafana is provisioned with that Prometheus, and the dashboard asks only for metrics the
node registers (and shows every one of them). Fast: files and the process registry, no servers."""

from __future__ import annotations

import importlib
import json
import pkgutil
import re
import shutil
import subprocess
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY

import api
import indexer
import node
from node.config import Settings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
PROMETHEUS = ROOT / "deploy" / "prometheus.yml"
DATASOURCES = ROOT / "deploy" / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
DASHBOARD_PROVIDERS = ROOT / "deploy" / "grafana" / "provisioning" / "dashboards" / "openpay.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "openpay.json"

ROWS = ["API", "Indexer", "Bus", "Webhooks", "E-mail", "Sweeps"]
METRIC = re.compile(r"\bopenpay_[a-z0-9_]+\b")
RANGE = re.compile(r"\[([^\]]*)\]")
# the sample names each metric type exposes (prometheus_client strips `_total` from a counter's name)
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "info": ("_info",),
}


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def compose_services() -> dict[str, Any]:
    services: dict[str, Any] = load_yaml(COMPOSE)["services"]
    return services


def bind_mounts(service: str) -> dict[PurePosixPath, tuple[Path, bool]]:
    """Container path -> (host path, read-only) for the service's bind mounts."""
    mounts = {}
    for volume in compose_services()[service].get("volumes", []):
        host, container, *mode = volume.split(":")
        if host.startswith((".", "/")):
            mounts[PurePosixPath(container)] = ((COMPOSE.parent / host).resolve(), mode == ["ro"])
    return mounts


def host_path(service: str, container_path: str) -> Path:
    """Where a path inside the service's container comes from on the host (through a bind mount)."""
    wanted = PurePosixPath(container_path)
    for container, (host, _) in bind_mounts(service).items():
        if wanted == container or container in wanted.parents:
            return host / wanted.relative_to(container)
    raise AssertionError(f"{container_path} is not mounted into the {service} service")


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def all_panels(panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for panel in panels:
        out.append(panel)
        out.extend(all_panels(panel.get("panels", [])))  # a collapsed row keeps its panels inside
    return out


def expressions() -> list[tuple[str, str]]:
    return [(panel["title"], target["expr"])
            for panel in all_panels(dashboard()["panels"]) for target in panel.get("targets", [])]


@pytest.fixture(scope="module")
def registered() -> dict[str, set[str]]:
    """Family name -> sample names, after importing every module of the node (metrics are
    registered at import; several modules import lazily, so walk them all)."""
    for package in (node, indexer, api):
        for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if ".migrations" not in module.name:
                importlib.import_module(module.name)
    families = {}
    for family in REGISTRY.collect():
        if family.name.startswith("openpay_"):
            families[family.name] = {family.name + s for s in SUFFIXES.get(family.type, ("",))}
    return families


def datasource_uid() -> str:
    uid: str = load_yaml(DATASOURCES)["datasources"][0]["uid"]
    return uid


def test_dashboard_is_valid_json_with_unique_panel_ids_and_the_rows() -> None:
    board = dashboard()
    panels = all_panels(board["panels"])
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), f"duplicate panel ids: {sorted(i for i in ids if ids.count(i) > 1)}"
    assert board["uid"] and board["title"]
    assert [p["title"] for p in panels if p["type"] == "row"] == ROWS
    for panel in panels:
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["targets"], f"{panel['title']}: no query"
        assert panel["datasource"]["uid"] == datasource_uid(), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == {"type": "prometheus", "uid": datasource_uid()}, panel["title"]
            assert target["expr"].strip(), panel["title"]


def test_promql_uses_rate_interval_and_balanced_brackets() -> None:
    for title, expr in expressions():
        assert expr.count("(") == expr.count(")") and expr.count("{") == expr.count("}"), (title, expr)
        for window in RANGE.findall(expr):
            assert window in ("$__rate_interval", "$__range"), (title, expr)
        if re.search(r"\b(rate|increase)\(", expr):
            assert RANGE.search(expr), (title, expr)


def test_every_metric_in_the_dashboard_is_registered(registered: dict[str, set[str]]) -> None:
    samples = set().union(*registered.values())
    unknown = {(title, name) for title, expr in expressions() for name in METRIC.findall(expr)
               if name not in samples}
    assert not unknown, f"the dashboard asks for metrics nobody registers: {sorted(unknown)}"
    for title, expr in expressions():
        assert METRIC.search(expr), f"{title}: {expr} names no openpay_ metric"


def test_every_registered_metric_is_on_the_dashboard(registered: dict[str, set[str]]) -> None:
    used = {name for _, expr in expressions() for name in METRIC.findall(expr)}
    missing = sorted(family for family, samples in registered.items() if not samples & used)
    assert not missing, f"add a panel to {DASHBOARD.relative_to(ROOT)} for: {missing}"


def test_grafana_is_provisioned_with_the_compose_prometheus() -> None:
    services = compose_services()
    grafana = services["grafana"]
    assert "grafana:/var/lib/grafana" in grafana["volumes"], "Grafana keeps its data volume"
    for host, read_only in bind_mounts("grafana").values():
        assert host.exists(), host
        assert read_only, f"{host} is mounted writable"

    sources = load_yaml(DATASOURCES)
    assert sources["apiVersion"] == 1
    (source,) = sources["datasources"]
    assert source["type"] == "prometheus" and source["isDefault"] is True and source["uid"]
    match = re.fullmatch(r"http://([a-z0-9_-]+):(\d+)/?", source["url"])
    assert match and match[1] in services and match[1] == "prometheus", source["url"]
    assert match[2] == "9090"  # Prometheus' own port inside the compose network
    assert source["jsonData"]["timeInterval"] == load_yaml(PROMETHEUS)["global"]["scrape_interval"]
    assert host_path("grafana", "/etc/grafana/provisioning/datasources/prometheus.yml") == DATASOURCES

    providers = load_yaml(DASHBOARD_PROVIDERS)
    assert providers["apiVersion"] == 1
    (provider,) = providers["providers"]
    assert provider["type"] == "file"
    folder = host_path("grafana", provider["options"]["path"])
    assert folder.is_dir() and (folder / DASHBOARD.name).resolve() == DASHBOARD
    assert host_path("grafana", "/etc/grafana/provisioning/dashboards/openpay.yml") == DASHBOARD_PROVIDERS
    home = grafana.get("environment", {}).get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
    assert home, "Grafana should open on the Open Pay dashboard"
    assert host_path("grafana", home) == DASHBOARD


def scrape_targets() -> set[tuple[str, int]]:
    """(host, port) of every target in deploy/prometheus.yml (static and DNS discovered)."""
    targets = set()
    for job in load_yaml(PROMETHEUS)["scrape_configs"]:
        assert job.get("metrics_path", "/metrics") == "/metrics", job["job_name"]
        for static in job.get("static_configs", []):
            for target in static["targets"]:
                host, port = target.rsplit(":", 1)
                targets.add((host, int(port)))
        for dns in job.get("dns_sd_configs", []):
            assert dns.get("type") == "A", f"{job['job_name']}: SRV needs a DNS server that compose lacks"
            targets.update((name, int(dns["port"])) for name in dns["names"])
    return targets


def test_prometheus_scrapes_every_role_compose_runs() -> None:
    roles = {}  # compose service -> port its metrics are served on
    for name, service in compose_services().items():
        command = service.get("command") or []
        if command[:1] != ["run"]:
            continue
        env = service.get("environment", {})
        if command[1] == "api":
            roles[name] = int(env.get("OPENPAY_API_PORT", Settings.model_fields["api_port"].default))
        else:
            port = int(env.get("OPENPAY_METRICS_PORT", Settings.model_fields["metrics_port"].default))
            assert port, f"{name} ({command[1]}) serves no metrics: set OPENPAY_METRICS_PORT"
            roles[name] = port
    assert {"api", "indexer", "worker", "scheduler"} <= roles.keys()
    missing = set(roles.items()) - scrape_targets()
    assert not missing, f"deploy/prometheus.yml does not scrape {sorted(missing)}"
    for host, read_only in bind_mounts("prometheus").values():
        assert host.exists() and read_only, host


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose not installed")
def test_docker_compose_accepts_the_file(tmp_path: Path) -> None:
    # a copy beside an empty .env: compose refuses a missing env_file, and the operator's secrets
    # are not part of the repository
    shutil.copy(COMPOSE, tmp_path / COMPOSE.name)
    (tmp_path / ".env").write_text("")
    done = subprocess.run(
        ["docker-compose", "-f", str(tmp_path / COMPOSE.name), "config", "-q"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 0, done.stderr
