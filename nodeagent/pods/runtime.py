"""Pod workers: one per Pod bound to this node, from namespace to deletion.

A ``PodWorker`` builds the pod's network (``netns``; a ``hostNetwork`` pod uses the
node's) and identity (``identity``: resolv.conf, /etc/hosts, hostname), runs each
container as a host process inside it (``ip netns exec``, its own session so a
signal reaches the whole group) with its securityContext applied (``security``: user, groups,
capabilities, no_new_privs, a read-only root, the ServiceAccount token mounted by
``serviceaccount``, ConfigMap/Secret/projected volumes by ``volumemanager``; until
those are set up its containers wait in ``ContainerCreating``), applies the
restart policy with back-off, runs probes (exec
probes the same way as the container), and asks for a status write whenever
anything it reports changes. Each container's environment is kubelet's
(``envvars``, fed by ``envsource``: Service variables, ``env``/``envFrom`` with
ConfigMaps, Secrets, pod fields and resources, ``$(VAR)`` in command and args). A
container that can't be configured (runAsNonRoot as root, no token yet, a missing
ConfigMap, Secret or key) waits with ``CreateContainerConfigError`` and is retried. Each container's pid is kept
in ``<state>/pods/<uid>/pod.json`` so a restarted agent adopts the process instead
of starting another. On ``deletionTimestamp`` it sends SIGTERM, waits the grace
period, sends SIGKILL, removes the namespace, releases the IP and deletes the Pod
with grace 0. What it does and sees (started, killed, unhealthy, backing off,
failed) it reports as kubelet's events (``events``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import pwd
import shutil
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from client.backoff import Backoff
from client.errors import ApiError
from componentbase.procs import kill_group, proc_start_time
from componentbase.tasks import cancel_and_wait
from nodeagent.pods import events, hosts, identity, netns, stdio
from nodeagent.pods.atomicwriter import FileProjection, write_projection
from nodeagent.pods.envsource import EnvSource
from nodeagent.pods.envvars import EnvError, expand_command
from nodeagent.pods.probes import ProbeCounter, probe_once, probe_timing
from nodeagent.pods.security import (
    DEFAULT_PATH,
    ROOT_ENV,
    ConfigError,
    Security,
    effective_security,
    launch_argv,
)
from nodeagent.pods.serviceaccount import (
    ClusterAccess,
    Token,
    refresh_delay,
    token_dir_owner,
)
from nodeagent.pods.status import ContainerRecord, format_time, restart_delay, should_restart
from nodeagent.pods.volumemanager import ObjectWatches, PodVolumes
from nodeagent.pods.volumes import VolumeError

log = logging.getLogger(__name__)

ADOPTED_POLL = 0.5  # seconds between liveness checks of a process we did not start
# seconds an exited container waits for its log writer to read the last output
LOG_DRAIN = 2.0
DEFAULT_GRACE = 30
FINISHED = ("Succeeded", "Failed")
TOKEN_RETRY = Backoff(base=1.0, cap=60.0)  # a failed TokenRequest is retried this often
TOKEN_WAIT = "waiting for the ServiceAccount token"
STARTUP, READINESS, LIVENESS = "Startup", "Readiness", "Liveness"  # probe kinds, as events say
FAILED_SANDBOX = "FailedCreatePodSandBox"  # kubelet's reason when a pod can't be set up


def _read_text(path: Path) -> str:
    """A node file the pod's files are made from; a missing one reads as empty."""
    try:
        return path.read_text()
    except OSError:
        return ""


def primary_gid(uid: int) -> int | None:
    """The host's passwd entry for ``uid`` (the host is the image here)."""
    try:
        return pwd.getpwuid(uid).pw_gid
    except KeyError:
        return None


@dataclass(frozen=True)
class RuntimeConfig:
    node_ns: str | None
    cluster: str
    dns_ip: str
    state_dir: Path
    backoff_base: float = 10.0
    backoff_cap: float = 300.0
    cluster_domain: str = "cluster.local"
    node_name: str = ""  # a hostNetwork pod's hostname
    host_resolv: Path = Path("/etc/resolv.conf")  # kubelet's --resolv-conf
    host_hosts: Path = Path("/etc/hosts")


class Container:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.record = ContainerRecord(name=spec["name"], image=spec.get("image", ""))
        self.pid: int | None = None
        self.pid_start: str | None = None
        self.proc: asyncio.subprocess.Process | None = None
        self.shim: asyncio.subprocess.Process | None = None  # its log writer
        self.liveness_failed = False
        self.start_failures = 0
        self.probe_tasks: list[asyncio.Task] = []
        self.stdin: int | None = None  # the agent's end of its stdin (``attach``)
        self.tty = False
        self.exited = asyncio.Event()  # set when the running instance exits
        self.env: dict[str, str] | None = None  # what the running instance was given


class PodWorker:
    """Runs one pod; ``update`` feeds it new versions of the object."""

    def __init__(self, cfg: RuntimeConfig, pod: dict[str, Any], *, pod_cidr: str,
                 ipam: Any, host_ip: str | None, changed: Callable[[PodWorker], None],
                 deleted: Callable[[PodWorker], Any], access: ClusterAccess | None = None,
                 recorder: events.EventRecorder | None = None,
                 env_source: EnvSource | None = None,
                 watches: ObjectWatches | None = None) -> None:
        self.cfg = cfg
        self.pod = pod
        self.uid: str = pod["metadata"]["uid"]
        self.key = f"{pod['metadata'].get('namespace', 'default')}/{pod['metadata']['name']}"
        # a hostNetwork pod runs in the node's network namespace (None: the agent's own)
        self.host_network = pod["spec"].get("hostNetwork") is True
        self.ns: str | None = (cfg.node_ns if self.host_network
                               else netns.pod_ns_name(cfg.cluster, self.uid))
        # what `hostname` prints in the pod, and its HOSTNAME, as a runtime sets it
        self.hostname = hosts.hostname_and_domain(pod, cluster_domain=cfg.cluster_domain,
                                                  node_name=cfg.node_name)[0]
        self.dir = cfg.state_dir / "pods" / self.uid
        self.pod_cidr = pod_cidr
        self.ipam = ipam
        self.host_ip = host_ip
        self.ip: str | None = None
        self.start_time = format_time(time.time())
        self.containers = [Container(c) for c in pod["spec"].get("containers") or []]
        self._changed = changed
        self._deleted = deleted
        self.terminating = asyncio.Event()
        self.gone = False  # the object was deleted outright: no DELETE needed
        self.task: asyncio.Task | None = None
        self.access = access
        self.token_dir: Path | None = None  # set when the pod mounts a token
        self.token: Token | None = None
        self.token_error: str | None = None
        self.config_changed = asyncio.Event()  # wakes containers waiting on config
        self.env_source = env_source or EnvSource(None, list)
        self.events = events.PodEvents(recorder)
        self._shims: set[asyncio.Task] = set()
        self.volumes = PodVolumes(pod, self.dir / "volumes", watches=watches, access=access,
                                  pod_events=self.events)

    # -- persistence ------------------------------------------------------------------------

    def _save(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o700)  # logs and the token: root's alone on the host
        data = {"uid": self.uid, "key": self.key, "netns": self.ns, "ip": self.ip,
                "startTime": self.start_time,
                "containers": {c.record.name: {"pid": c.pid, "pidStart": c.pid_start,
                                               "restartCount": c.record.restart_count,
                                               "state": c.record.state}
                               for c in self.containers}}
        tmp = self.dir / "pod.json.tmp"
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        os.replace(tmp, self.dir / "pod.json")

    def _load(self) -> dict[str, Any]:
        try:
            return json.loads((self.dir / "pod.json").read_text())
        except (OSError, ValueError):
            return {}

    # -- lifecycle ---------------------------------------------------------------------------

    def update(self, pod: dict[str, Any]) -> None:
        self.pod = pod
        self.volumes.update(pod)
        if pod["metadata"].get("deletionTimestamp") and not self.terminating.is_set():
            log.info("pod %s: deletion requested", self.key)
            self.terminating.set()
        self._changed(self)

    def delete_now(self) -> None:
        """The object is gone (force-deleted): stop at once."""
        self.gone = True
        self.terminating.set()

    def notify(self) -> None:
        self._changed(self)

    async def run(self) -> None:
        saved = self._load()
        self.start_time = saved.get("startTime", self.start_time)
        if self.host_network:
            self.ip = self.host_ip  # the node's address; no pod IP is taken
        else:
            self.ip = await asyncio.to_thread(self.ipam.allocate, self.uid)
        if not saved:
            self._save()  # the record first: a restarted agent cleans up only what it recorded
        files = await self._place_identity()
        if not self.host_network:
            assert self.ns is not None and self.ip is not None
            await asyncio.to_thread(
                netns.create_pod_network, node_ns=self.cfg.node_ns, pod_ns=self.ns,
                uid=self.uid, ip=self.ip, pod_cidr=self.pod_cidr, resolv=files.resolv)
        for c in self.containers:
            old = saved.get("containers", {}).get(c.record.name) or {}
            c.record.restart_count = int(old.get("restartCount") or 0)
            pid, start = old.get("pid"), old.get("pidStart")
            if pid and start and proc_start_time(pid) == start:
                c.pid, c.pid_start = pid, start
                c.record.state = old.get("state")
                c.record.started = True
                # Keep what the API says until a probe decides: no flap on agent restart.
                reported = {x.get("name"): x for x in
                            (self.pod.get("status") or {}).get("containerStatuses") or []}
                c.record.ready = bool(reported.get(c.record.name, {}).get("ready"))
                c.record.startup_pending = bool(c.spec.get("startupProbe")) and not \
                    reported.get(c.record.name, {}).get("started")
                c.record.last_state = reported.get(c.record.name, {}).get("lastState") or None
                log.info("pod %s: adopted container %s (pid %d)", self.key, c.record.name, pid)
        finished = (self.pod.get("status") or {}).get("phase") in FINISHED
        if finished:  # ran to completion before an agent restart: never run it again
            reported = {x.get("name"): x for x in
                        (self.pod.get("status") or {}).get("containerStatuses") or []}
            for c in self.containers:
                r = reported.get(c.record.name, {})
                c.record.state, c.record.finished = r.get("state"), True
                c.record.restart_count = int(r.get("restartCount") or 0)
        self._save()
        log.info("pod %s: network ready in %s with %s", self.key, self.ns, self.ip)
        self.notify()
        token_task = None
        if not finished and self.access is not None:
            token_task = await self._start_token()
        loops = [] if finished else [asyncio.create_task(self.volumes.run())] + [
            asyncio.create_task(self._container_loop(c)) for c in self.containers]
        await self.terminating.wait()
        await self._terminate()
        await cancel_and_wait(loops + ([token_task] if token_task else []))
        await self._cleanup()

    async def _place_identity(self) -> identity.PodFiles:
        """Write the pod's resolv.conf, hosts and hostname and make its UTS namespace
        (``identity``); what kubelet would warn about forming them becomes an event."""
        node = identity.NodeDNS(
            cluster_dns=(self.cfg.dns_ip,) if self.cfg.dns_ip else (),
            cluster_domain=self.cfg.cluster_domain, node_name=self.cfg.node_name,
            resolv_conf=_read_text(self.cfg.host_resolv),
            hosts_file=_read_text(self.cfg.host_hosts))
        try:
            files = identity.pod_files(self.pod, pod_ips=[self.ip] if self.ip else [],
                                       node=node)
        except ValueError as exc:  # the worker retries; the pod says why it waits
            self.events.pod_warning(self.pod, FAILED_SANDBOX, str(exc))
            raise identity.IdentityError(str(exc)) from exc
        self.hostname = files.hostname
        await asyncio.to_thread(identity.place, self.dir, files)
        for reason, message in files.warnings:
            log.warning("pod %s: %s: %s", self.key, reason, message)
            self.events.pod_warning(self.pod, reason, message)
        return files

    async def _container_loop(self, c: Container) -> None:
        policy = self.pod["spec"].get("restartPolicy") or "Always"
        if c.pid is not None and c.env is None:  # adopted: what it was given, for exec
            with contextlib.suppress(EnvError):
                built = await self.env_source.build(self.pod, c.spec, pod_ip=self.ip,
                                                    host_ip=self.host_ip)
                c.env = {**self._base_env(), **built.env}
        while not self.terminating.is_set():
            if c.pid is None and not self.volumes.ready.is_set():
                c.record.state = {"waiting": {"reason": "ContainerCreating"}}
                self.notify()
                await self._sleep(3600, wake=self.volumes.ready)
                continue
            if c.pid is None and not await self._start(c):
                c.start_failures += 1
                self.config_changed.clear()
                await self._sleep(restart_delay(c.start_failures, base=self.cfg.backoff_base,
                                                cap=self.cfg.backoff_cap),
                                  wake=self.config_changed)
                continue
            c.start_failures = 0
            self._start_probes(c)
            c.exited.clear()
            code = await self._wait_exit(c)
            c.exited.set()
            self.close_stdin(c)
            self._stop_probes(c)
            c.pid = c.proc = c.pid_start = None
            c.record.ready = False
            now = format_time(time.time())
            started = (c.record.state or {}).get("running", {}).get("startedAt", now)
            reason = "Completed" if code == 0 else "Error"
            term = {"terminated": {"exitCode": code, "reason": reason,
                                   "startedAt": started, "finishedAt": now}}
            c.record.state = term
            if self.terminating.is_set():
                break
            log.info("pod %s: container %s exited with %d%s", self.key, c.record.name, code,
                     " (liveness probe failed)" if c.liveness_failed else "")
            if not should_restart(policy, code):
                c.record.finished = True
                self._save()
                self.notify()
                return
            c.record.last_state = term
            c.record.restart_count += 1
            delay = restart_delay(c.record.restart_count, base=self.cfg.backoff_base,
                                  cap=self.cfg.backoff_cap)
            c.record.state = {"waiting": {"reason": "CrashLoopBackOff",
                                          "message": f"back-off {delay:g}s restarting failed "
                                          f"container={c.record.name} pod={self.key}"}}
            self.events.warning(self.pod, c.record.name, events.BACK_OFF,
                                events.back_off(c.record.name, self.pod))
            self._save()
            self.notify()
            await self._sleep(delay)

    async def _sleep(self, seconds: float, *, wake: asyncio.Event | None = None) -> None:
        waits = [asyncio.create_task(self.terminating.wait())]
        if wake is not None:
            waits.append(asyncio.create_task(wake.wait()))
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            await cancel_and_wait(waits)

    # -- the ServiceAccount token -----------------------------------------------------------

    def _securities(self) -> list[Security]:
        out = []
        for c in self.containers:
            with contextlib.suppress(ConfigError):
                out.append(effective_security(self.pod, c.spec, primary_gid=primary_gid))
        return out

    async def _start_token(self) -> asyncio.Task | None:
        """Decide whether the pod mounts a token; if so, fetch the first one before
        the containers start (so they normally need no retry) and keep it fresh."""
        assert self.access is not None
        failures = 0
        while not self.terminating.is_set():
            try:
                mount = await self.access.automount(self.pod)
                break
            except ApiError as exc:
                failures += 1
                log.warning("pod %s: cannot tell whether to mount a token: %s", self.key, exc)
                await self._sleep(TOKEN_RETRY.next(failures))
        else:
            return None
        if not mount:
            return None
        self.token_dir = self.dir / "serviceaccount"
        await self._refresh_token()
        return asyncio.create_task(self._token_loop(), name=f"token-{self.key}")

    async def _refresh_token(self) -> bool:
        assert self.access is not None and self.token_dir is not None
        try:
            token = await self.access.token(self.pod)
            files = {"token": token.token.encode(),
                     "namespace": self.pod["metadata"].get("namespace", "default").encode()}
            if self.access.ca_pem is not None:
                files["ca.crt"] = self.access.ca_pem
            fs_group = ((self.pod["spec"].get("securityContext") or {}).get("fsGroup"))
            uid, gid, mode = token_dir_owner(self._securities(),
                                             fs_group if isinstance(fs_group, int) else None)
            await asyncio.to_thread(write_projection, self.token_dir,
                                    {k: FileProjection(v) for k, v in files.items()},
                                    uid=uid, gid=gid, mode=mode, now=time.time())
        except (ApiError, OSError) as exc:
            self.token_error = f"failed to fetch token: {exc}"
            log.warning("pod %s: %s", self.key, self.token_error)
            return False
        first = self.token is None
        self.token, self.token_error = token, None
        log.info("pod %s: ServiceAccount token %s", self.key, "mounted" if first
                 else "refreshed")
        self.config_changed.set()
        return True

    async def _token_loop(self) -> None:
        failures = 0 if self.token is not None else 1
        while True:
            if failures:
                await asyncio.sleep(TOKEN_RETRY.next(failures))
            else:
                assert self.token is not None
                await asyncio.sleep(refresh_delay(self.token, now=time.time()))
            failures = 0 if await self._refresh_token() else failures + 1

    # -- starting a container ----------------------------------------------------------------

    def _config_problem(self, c: Container) -> tuple[Security | None, str | None]:
        try:
            sec = effective_security(self.pod, c.spec, primary_gid=primary_gid)
        except ConfigError as exc:
            return None, str(exc)
        if self.token_dir is not None and self.token is None:
            return None, self.token_error or TOKEN_WAIT
        try:
            self._mounts(c)
        except ValueError as exc:
            return None, str(exc)
        return sec, None

    def _from_volume(self, c: Container, path: str) -> bool:
        """A program in one of the container's volumes is only there once mounted:
        whether it runs is for the launch to find out."""
        return any(path == target or path.startswith(target.rstrip("/") + "/")
                   for _source, target in self._mounts(c))

    def _mounts(self, c: Container) -> list[tuple[str, str]]:
        """The container's volume mounts (``ValueError`` for a bad ``subPath``)."""
        try:
            return self.volumes.mounts(c.spec)
        except VolumeError as exc:
            raise ValueError(str(exc)) from exc

    def launch(self, sec: Security, command: list[str], env: dict[str, str], *,
               volumes: list[tuple[str, str]] | None = None) -> list[str]:
        """The argv that runs ``command`` as the container (for it and exec probes)."""
        return launch_argv(netns=self.ns, sec=sec, command=command, env=env,
                           token_dir=str(self.token_dir) if self.token_dir else None,
                           python=sys.executable, binds=identity.binds(self.dir),
                           uts=str(identity.uts_path(self.dir)), volumes=volumes or [])

    def _base_env(self) -> dict[str, str]:
        """What the image and runtime would give: PATH and HOSTNAME (the pod's
        hostname, as its UTS namespace says)."""
        return {"PATH": DEFAULT_PATH, "HOSTNAME": self.hostname}

    async def _environment(self, c: Container) -> dict[str, str]:
        """PATH, HOSTNAME, then what kubelet sets (``envvars``: Service variables, then
        the container's ``envFrom`` and ``env``, which win). Raises ``EnvError``."""
        built = await self.env_source.build(self.pod, c.spec, pod_ip=self.ip,
                                            host_ip=self.host_ip)
        for reason, message in built.warnings:
            self.events.warning(self.pod, c.record.name, reason, message)
        return {**self._base_env(), **built.env}

    async def _start(self, c: Container) -> bool:
        spec = c.spec
        sec, config_problem = self._config_problem(c)
        env: dict[str, str] = {}
        if config_problem is None:
            try:
                env = await self._environment(c)
            except EnvError as exc:
                config_problem = str(exc)
        argv = expand_command(spec, env)
        if config_problem is not None or sec is None:
            c.record.state = {"waiting": {"reason": "CreateContainerConfigError",
                                          "message": config_problem}}
            (log.debug if c.start_failures else log.warning)(
                "pod %s: container %s not configured: %s", self.key, c.record.name,
                config_problem)
            if config_problem != TOKEN_WAIT:  # the first token on its way is no failure
                self.events.warning(self.pod, c.record.name, events.FAILED,
                                    events.failed(str(config_problem)))
            self.notify()
            return False
        cwd = spec.get("workingDir") or "/"
        problem = None
        if not argv:
            problem = "no command given (images are not run; set command)"
        elif not (os.path.isabs(argv[0]) and (os.access(argv[0], os.X_OK)
                                              or self._from_volume(c, argv[0]))
                  or shutil.which(argv[0], path=env["PATH"])):
            problem = f'exec: "{argv[0]}": executable file not found in $PATH'
        elif "=" in argv[0]:  # env(1) would take it for a variable
            problem = f'exec: "{argv[0]}": a command name must not contain "="'
        elif not os.path.isdir(cwd):
            problem = f"workingDir {cwd!r} does not exist"
        if problem is not None:
            c.record.state = {"waiting": {"reason": "CreateContainerError", "message": problem}}
            (log.debug if c.start_failures else log.warning)("pod %s: container %s cannot start: %s", self.key, c.record.name,
                        problem)
            self.events.warning(self.pod, c.record.name, events.FAILED, events.failed(problem))
            self.notify()
            return False
        self.events.normal(self.pod, c.record.name, events.PULLED,
                           events.pulled(c.record.image))
        log_path = self.log_path(c.record.name)
        if log_path.exists():  # the last instance's log is what ``previous`` reads
            os.replace(log_path, self.log_path(c.record.name, previous=True))
        self.close_stdin(c)
        # there before the container runs: an attach right after the start follows it
        os.close(os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
        io = stdio.open_stdio(stdin=bool(spec.get("stdin")), tty=bool(spec.get("tty")))
        try:
            shim = await stdio.start_shim(io, log_path)
            child_in, child_out, child_err = io.child
            # the root part of the launch sees only PATH: the pod's env is set last
            c.proc = await asyncio.create_subprocess_exec(
                *self.launch(sec, argv, env, volumes=self._mounts(c)),
                stdin=child_in if child_in is not None else asyncio.subprocess.DEVNULL,
                stdout=child_out, stderr=child_err, env=ROOT_ENV, cwd=cwd,
                start_new_session=True, preexec_fn=stdio.take_terminal if io.tty else None)
        except BaseException:
            io.started()
            if io.stdin is not None:
                os.close(io.stdin)
            raise
        io.started()
        c.stdin, c.tty = io.stdin, io.tty
        c.shim = shim
        self._reap(shim)
        self.events.normal(self.pod, c.record.name, events.CREATED,
                           events.created(c.record.name))
        c.pid = c.proc.pid
        c.pid_start = proc_start_time(c.pid)
        c.env = env
        c.liveness_failed = False
        c.record.started = True
        c.record.state = {"running": {"startedAt": format_time(time.time())}}
        c.record.startup_pending = bool(spec.get("startupProbe"))
        c.record.ready = not spec.get("readinessProbe") and not c.record.startup_pending
        self._save()
        log.info("pod %s: started container %s (pid %d)", self.key, c.record.name, c.pid)
        self.events.normal(self.pod, c.record.name, events.STARTED,
                           events.started(c.record.name))
        self.notify()
        return True

    def log_path(self, container: str, *, previous: bool = False) -> Path:
        """The container's CRI log (``crilog``); the one of its last instance if
        ``previous``."""
        return self.dir / (f"{container}.previous.log" if previous else f"{container}.log")

    def close_stdin(self, c: Container) -> None:
        """End the container's stdin (its exit, or ``stdinOnce`` after an attach)."""
        if c.stdin is not None:
            with contextlib.suppress(OSError):
                os.close(c.stdin)
            c.stdin = None

    def _reap(self, proc: asyncio.subprocess.Process) -> None:
        task = asyncio.create_task(proc.wait())
        self._shims.add(task)
        task.add_done_callback(self._shims.discard)

    def find_container(self, name: str) -> Container | None:
        return next((c for c in self.containers if c.record.name == name), None)

    def exec_argv(self, c: Container, command: list[str]) -> list[str]:
        """The argv running ``command`` as the container runs (``kubectl exec``, exec
        probes). Raises ``ValueError`` while the container can't be configured."""
        return self._probe_argv(c, command)

    async def _log_drained(self, c: Container) -> None:
        """As containerd reports an exit only once the output is copied: wait for the
        log writer to read the last of it, so ``kubectl logs`` of a finished container
        shows everything. Bounded: a process the container left behind may hold the
        pipe open."""
        shim = c.shim
        if shim is not None and shim.returncode is None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(LOG_DRAIN):
                    await shim.wait()

    async def _wait_exit(self, c: Container) -> int:
        if c.proc is not None:
            code = await c.proc.wait()
            await self._log_drained(c)
            return 128 - code if code < 0 else code  # killed by a signal: 128+N
        while c.pid is not None and proc_start_time(c.pid) == c.pid_start:
            await asyncio.sleep(ADOPTED_POLL)
        return 137 if c.liveness_failed else 0  # an adopted process's code is unknown

    # -- probes ------------------------------------------------------------------------------

    def _start_probes(self, c: Container) -> None:
        """The startup probe first, if any; readiness and liveness once it succeeded
        (kubelet's workers skip them until then)."""
        if c.spec.get("startupProbe") and c.record.startup_pending:
            c.probe_tasks.append(asyncio.create_task(
                self._probe_loop(c, c.spec["startupProbe"], kind=STARTUP)))
        else:
            self._after_startup(c)

    def _after_startup(self, c: Container) -> None:
        if c.spec.get("readinessProbe"):
            c.probe_tasks.append(asyncio.create_task(
                self._probe_loop(c, c.spec["readinessProbe"], kind=READINESS)))
        elif not c.record.ready:
            c.record.ready = True
            self.notify()
        if c.spec.get("livenessProbe"):
            c.probe_tasks.append(asyncio.create_task(
                self._probe_loop(c, c.spec["livenessProbe"], kind=LIVENESS)))

    def _probe_argv(self, c: Container, command: list[str]) -> list[str]:
        """An exec probe runs as its container does (user, capabilities, mounts)."""
        sec, problem = self._config_problem(c)
        if sec is None:
            raise ValueError(problem)
        return self.launch(sec, command, c.env if c.env is not None else self._base_env(),
                           volumes=self._mounts(c))

    def _stop_probes(self, c: Container) -> None:
        for t in c.probe_tasks:
            t.cancel()
        c.probe_tasks.clear()

    async def _probe_loop(self, c: Container, probe: dict[str, Any], *, kind: str) -> None:
        """``kind``: Startup, Readiness or Liveness. A failed startup or liveness verdict
        kills the container (its restart policy decides the rest); a startup success
        starts the others."""
        delay, period, _ = probe_timing(probe)
        counter = ProbeCounter(int(probe.get("successThreshold") or 1),
                               int(probe.get("failureThreshold") or 3))
        await asyncio.sleep(delay)
        while True:
            result = await probe_once(probe, container=c.spec, node_ns=self.cfg.node_ns,
                                      pod_ns=self.ns or "", pod_ip=self.ip or "",
                                      exec_argv=lambda cmd: self._probe_argv(c, cmd))
            if not result.ok:
                self.events.warning(self.pod, c.record.name, events.UNHEALTHY,
                                    events.probe_failed(kind, result.output))
            verdict = counter.record(result.ok)
            if kind == STARTUP and verdict is True:
                log.info("pod %s: container %s started (startup probe)", self.key,
                         c.record.name)
                c.record.startup_pending = False
                self.notify()
                self._after_startup(c)
                return
            if kind != READINESS:
                if verdict is False and c.pid is not None:
                    log.info("pod %s: %s probe of %s failed; killing it", self.key,
                             kind.lower(), c.record.name)
                    self.events.normal(self.pod, c.record.name, events.KILLING,
                                       events.startup_kill(c.record.name) if kind == STARTUP
                                       else events.liveness_kill(c.record.name))
                    c.liveness_failed = True
                    kill_group(c.pid, signal.SIGKILL)
                    return
            elif verdict is not None and verdict != c.record.ready:
                c.record.ready = verdict
                log.info("pod %s: container %s %s", self.key, c.record.name,
                         "ready" if verdict else "not ready")
                self.notify()
            await asyncio.sleep(period)

    # -- deletion ----------------------------------------------------------------------------

    def grace_seconds(self) -> float:
        meta, spec = self.pod["metadata"], self.pod["spec"]
        g = meta.get("deletionGracePeriodSeconds")
        if g is None:
            g = spec.get("terminationGracePeriodSeconds", DEFAULT_GRACE)
        return 0.0 if self.gone else float(g)

    async def _terminate(self) -> None:
        running = [c for c in self.containers if c.pid is not None]
        for c in running:
            self._stop_probes(c)
            self.events.normal(self.pod, c.record.name, events.KILLING,
                               events.stopping(c.record.name))
            kill_group(c.pid, signal.SIGTERM)  # type: ignore[arg-type]
        deadline = time.monotonic() + self.grace_seconds()
        while any(self._alive(c) for c in running) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        for c in running:
            if self._alive(c):
                log.info("pod %s: container %s outlived its grace period; SIGKILL", self.key,
                         c.record.name)
                kill_group(c.pid, signal.SIGKILL)  # type: ignore[arg-type]
        while any(self._alive(c) for c in running):
            await asyncio.sleep(0.05)

    @staticmethod
    def _alive(c: Container) -> bool:
        if c.proc is not None:
            return c.proc.returncode is None
        return c.pid is not None and proc_start_time(c.pid) == c.pid_start

    async def _cleanup(self) -> None:
        if not self.host_network:  # never the node's own namespace
            assert self.ns is not None
            await asyncio.to_thread(netns.delete_pod_network, node_ns=self.cfg.node_ns,
                                    pod_ns=self.ns, uid=self.uid)
            await asyncio.to_thread(self.ipam.release, self.uid)
        await asyncio.to_thread(identity.remove, self.dir)
        shutil.rmtree(self.dir, ignore_errors=True)
        log.info("pod %s: stopped and cleaned up", self.key)
        await self._deleted(self)
