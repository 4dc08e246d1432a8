"""docker-compose.ha.yml on top of docker-compose.yml: one storage for every API server,
every API server in every client's list and in the serving certificate, PostgreSQL
reachable by the API servers alone.

Read from the files, merged as compose merges the keys they use (an override's
``command`` and ``entrypoint`` replace, ``volumes`` add, ``networks`` and
``depends_on`` merge); tests/containers runs them for real. The API servers'
entrypoint (the storage guard) runs here, under ``sh``, against a record in a temp
directory.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from mpctl.cluster import plan, storagerecord
from tests.conftest import REPO

BASE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
HA = yaml.safe_load((REPO / "docker-compose.ha.yml").read_text())
PKI_DIR = "/var/lib/miniplane/pki"  # where API servers mount `apiserver-pki`


def merged(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """The services of ``base`` with ``override``'s applied (see the docstring)."""
    out = {name: dict(svc) for name, svc in base["services"].items()}
    for name, svc in override["services"].items():
        into = out.setdefault(name, {})
        for key, value in svc.items():
            if key == "volumes":
                into[key] = [*into.get(key, []), *value]
            elif key in ("networks", "depends_on") and isinstance(into.get(key), dict):
                extra = value if isinstance(value, dict) else dict.fromkeys(value)
                into[key] = {**into[key], **extra}
            else:
                into[key] = value
    return out


PLAIN_SERVICES = merged(BASE, {"services": {}})
HA_SERVICES = merged(BASE, HA)


def flag(argv: list[str], name: str) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv) if a == name]


def apiservers(services: dict[str, Any]) -> dict[str, Any]:
    return {n: s for n, s in services.items() if (s.get("command") or [""])[0] == "mp-apiserver"}


def volume_names(svc: dict[str, Any]) -> set[str]:
    return {v.split(":")[0] for v in svc.get("volumes") or []}


def storage_kind(url: str) -> str:
    return url.split(":")[0].split("+")[0]


@pytest.mark.parametrize(("services", "want"), [(PLAIN_SERVICES, ["apiserver"]),
                                                (HA_SERVICES, ["apiserver", "apiserver-2",
                                                               "apiserver-3"])],
                         ids=["plain", "ha"])
def test_every_api_server_uses_the_storage_the_pki_one_shot_records(
        services: dict[str, Any], want: list[str]) -> None:
    """One storage (and one database) per deployment; the plain file stays on SQLite."""
    recorded = flag(services["pki"]["command"], "--storage")
    assert len(recorded) == 1
    urls = {name: flag(svc["command"], "--storage-url") for name, svc in
            apiservers(services).items()}
    assert sorted(urls) == want
    assert len({u[0] for u in urls.values()}) == 1, urls
    assert {storage_kind(u[0]) for u in urls.values()} == set(recorded)
    for name, svc in apiservers(services).items():
        assert svc["entrypoint"] == BASE["services"]["apiserver"]["entrypoint"], name
        assert svc["depends_on"]["pki"] == {"condition": "service_completed_successfully"}
    if services is HA_SERVICES:
        assert urls["apiserver"][0].startswith("postgresql+psycopg://miniplane@postgres:")
        assert "password" not in urls["apiserver"][0].split("?")[0].split("@")[0]
        for svc in apiservers(services).values():
            assert svc["depends_on"]["postgres"] == {"condition": "service_healthy"}


def test_every_client_and_the_certificate_name_all_three_api_servers() -> None:
    pki = HA_SERVICES["pki"]["command"]
    servers = apiservers(HA_SERVICES)
    assert flag(pki, "--server") == [",".join(f"https://{n}:6443" for n in servers)]
    assert flag(pki, "--apiserver-name") == list(servers)
    addresses = [s["networks"]["cluster"]["ipv4_address"] for s in servers.values()]
    assert flag(pki, "--apiserver-ip") == addresses
    assert [flag(s["command"], "--advertise-address")[0] for s in servers.values()] == addresses
    published = [s["ports"][0].rsplit(":", 1)[0] for s in servers.values()]
    assert flag(pki, "--admin-server") == [",".join(f"https://{p}" for p in published)]
    # the other flags as in the plain file (the node list, the CA's directory, the name)
    plain = PLAIN_SERVICES["pki"]["command"]
    for name in ("--dir", "--cluster-name", "--node"):
        assert flag(pki, name) == flag(plain, name), name
    made = plan.pki_plan(Path("/pki"), server=flag(pki, "--server")[0], nodes=[],
                         apiserver_names=flag(pki, "--apiserver-name"),
                         apiserver_ips=flag(pki, "--apiserver-ip"))
    assert set(servers) <= set(made.serving_names)
    assert set(addresses) <= set(made.serving_ips)


def test_two_controller_processes_with_the_controllers_credential_alone() -> None:
    one, two = HA_SERVICES["controllers"], HA_SERVICES["controllers-2"]
    assert one["command"] == two["command"]
    assert flag(two["command"], "--leader-elect") == []  # on by default
    assert volume_names(one) == volume_names(two) == {"controllers-credentials"}
    assert (one["hostname"], two["hostname"]) == ("controllers", "controllers-2")
    assert two["user"] == one["user"] and two["read_only"] is True


def test_postgres_is_reachable_by_the_api_servers_alone_and_by_password() -> None:
    pg = HA_SERVICES["postgres"]
    assert pg["user"] == "postgres" and "ports" not in pg
    assert pg["networks"] == ["storage"]
    assert HA["networks"]["storage"]["internal"] is True
    on_storage = {n for n, s in HA_SERVICES.items()
                  if "storage" in (s.get("networks") or {})}
    assert on_storage == {"postgres", *apiservers(HA_SERVICES)}
    mounting = {n for n, s in HA_SERVICES.items() if "postgres-credentials" in volume_names(s)}
    assert mounting == {"pki", "postgres", *apiservers(HA_SERVICES)}
    assert {n for n, s in HA_SERVICES.items() if "postgres" in volume_names(s)} == {"postgres"}
    assert pg["depends_on"] == {"pki": {"condition": "service_completed_successfully"}}
    script = pg["entrypoint"][2]
    assert "trust" not in script
    hba = [line for line in script.splitlines() if "pg_hba.conf" in line]
    assert hba == ['  echo "host miniplane miniplane samenet scram-sha-256" > '
                   '"$$data.new/pg_hba.conf"'], hba


def guard(tmp_path: Path, service: dict[str, Any]) -> str:
    """The API server's entrypoint script, its record path moved under ``tmp_path``."""
    entry = service["entrypoint"]
    assert entry[:2] == ["sh", "-ec"] and entry[3] == "mp-apiserver"
    return entry[2].replace("$$", "$").replace(PKI_DIR, str(tmp_path))


@pytest.mark.parametrize("name", ["apiserver", "apiserver-2"])
def test_an_api_server_of_another_storage_than_the_recorded_one_exits(
        tmp_path: Path, name: str) -> None:
    """What keeps one file's API server from running beside the other's (``up
    --no-deps`` skips the pki one-shot's refusal): its entrypoint."""
    script = guard(tmp_path, HA_SERVICES[name])

    def start(recorded: str | None, url: str) -> subprocess.CompletedProcess[str]:
        record = storagerecord.path(tmp_path)
        record.unlink(missing_ok=True)
        if recorded is not None:
            record.write_text(f"{recorded}\n")
        return subprocess.run(["sh", "-ec", script, "mp-apiserver", "echo", "started",
                               "--listen", "0.0.0.0:6443", "--storage-url", url],
                              capture_output=True, text=True, timeout=10, check=False)

    sqlite = flag(PLAIN_SERVICES["apiserver"]["command"], "--storage-url")[0]
    pg = flag(HA_SERVICES[name]["command"], "--storage-url")[0]
    for recorded, url in (("sqlite", sqlite), ("postgresql", pg)):
        ok = start(recorded, url)
        assert (ok.returncode, ok.stdout) == (0, f"started --listen 0.0.0.0:6443 "
                                                 f"--storage-url {url}\n"), ok
    for recorded, url in (("postgresql", sqlite), ("sqlite", pg), (None, pg), (None, sqlite)):
        refused = start(recorded, url)
        assert refused.returncode == 1 and refused.stdout == "", (recorded, url, refused)
        line, = refused.stderr.splitlines()
        assert line.startswith(f"mp-apiserver: error: this deployment's API servers use "
                               f"{recorded or 'unknown'} storage"), line


def test_controllers_and_dnsd_give_up_on_a_dead_name_within_a_second() -> None:
    """A dead API server's name is forwarded to unreachable resolvers; the controllers'
    and dnsd's lookups give up after a second, within a leader-election attempt."""
    for name in ("controllers", "controllers-2", "dnsd"):
        assert HA_SERVICES[name]["dns_opt"] == ["timeout:1", "attempts:1"], name


def test_dnsd_forwards_to_its_containers_resolv_conf_in_both_deployments() -> None:
    """Issue 18: names outside the cluster go to the nameservers of the container's
    resolv.conf (Docker's embedded DNS), as CoreDNS's ``forward . /etc/resolv.conf``."""
    for services in (PLAIN_SERVICES, HA_SERVICES):
        argv = services["dnsd"]["command"]
        assert flag(argv, "--upstream-resolv-conf") == ["/etc/resolv.conf"]
        assert flag(argv, "--upstream") == []
