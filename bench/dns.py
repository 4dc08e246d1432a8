"""DNS benchmark: mp-dnsd vs dnsmasq over 1,000 Services, with dnsperf; programming latency.

Run as root on a machine with two or more CPUs:
``.venv/bin/python bench/dns.py`` (needs ``dnsperf`` and ``dnsmasq``:
``apt-get install -y dnsperf dnsmasq-base``: the binary without the system
service, which would take port 53). It starts a real ``mp-apiserver`` on a
temporary database, creates 1,000 ClusterIP Services, and starts ``mp-dnsd``
pinned to one CPU (``taskset``) while dnsperf, the API server and this script
share the other. In the same run dnsmasq, pinned the same way, serves the same
names from a hosts file, so the ratio is measured on the same machine in the
same minutes: absolute figures drift on shared VMs. The runs are repeated in
rounds that alternate the servers (``--rounds``, 3); the best round is printed,
every round goes to ``--json``. A hosts file has no SRV records, so dnsmasq is
also run once on the mix with one ``srv-host`` line per Service.

Measured, for both servers:

1. **A hits**: every Service's A record, 8 dnsperf clients × 500 outstanding.
2. **Pod mix**: what pods send (see ``pod_mix``): A hits, AAAA NODATA, the
   ndots:5 search-path NXDOMAINs, SRV; half of the queries with EDNS0 (two
   dnsperf processes, one with ``-e``, running at once).
3. **p50/p99 latency of the mix at 10,000 qps** (two rate-limited dnsperf
   processes with ``-v``; latency per query from their output).

And for dnsd: the **programming latency** of 200 Service creations, from just
before the POST to the first positive answer (polled over UDP), plus what dnsd's
own ``dns_programming_duration_seconds`` recorded from the trigger-time
annotation the benchmark stamps on each Service.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# This file is named dns.py, so its directory (first on sys.path when run as a
# script) would shadow dnspython's ``dns`` package: put the repository there instead.
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(REPO)

import dns.message  # noqa: E402
import dns.rcode  # noqa: E402

from apimachinery.kinds import SERVICE  # noqa: E402
from client.config import load_config  # noqa: E402
from client.http import Client  # noqa: E402
from componentbase.polling import poll  # noqa: E402
from dnsd.testing import BIN, DnsdProcess, free_port  # noqa: E402

SERVER_CPU, CLIENT_CPU = "1", "0"
NAMESPACE = "default"
ADMIN_KUBECONFIG = "pki/admin.kubeconfig"  # what mp-apiserver makes beside its database
ZONE = "cluster.local"
TRIGGER = "endpoints.kubernetes.io/last-change-trigger-time"


@dataclass
class Run:
    """One dnsperf measurement (summed over the processes run together)."""

    qps: float
    sent: int
    completed: int
    lost: int
    avg_latency_ms: float
    rcodes: dict[str, int]
    server_cpu: float  # fraction of one CPU the server used during the run (busy VMs: < 1
    # even at saturation, because other processes get time on the pinned CPU too)
    p50_ms: float | None = None
    p99_ms: float | None = None


def need_tools() -> None:
    missing = [t for t in ("dnsperf", "dnsmasq", "taskset") if shutil.which(t) is None]
    if missing:
        sys.exit(f"bench/dns.py needs {', '.join(missing)}: apt-get install -y dnsperf "
                 "dnsmasq-base util-linux (then run it again)")
    if len(os.sched_getaffinity(0)) < 2:
        sys.exit("bench/dns.py needs two CPUs: one for the server, one for dnsperf")


# -- query files -----------------------------------------------------------------------


def a_hits(n: int) -> list[str]:
    return [f"web-{i}.{NAMESPACE}.svc.{ZONE} A" for i in range(n)]


def pod_mix(n: int, seed: int = 7) -> list[str]:
    """13 queries per Service, as pods' resolvers (ndots:5, search path) send them:

    - a pod in the Service's namespace looks up ``web-N``: A hit + AAAA NODATA (×2);
    - a pod in namespace ``other`` looks up ``web-N.default``: its first search suffix
      gives NXDOMAIN for A and AAAA, then the second hits (counted above);
    - a pod looks up ``api-N.example.com``: three in-zone NXDOMAINs × (A, AAAA) before
      the absolute name, which goes upstream and is left out (not the server's work);
    - a client library asks ``_http._tcp.web-N.default.svc`` SRV.

    So: 15 % A hits, 15 % AAAA NODATA, 62 % NXDOMAIN, 8 % SRV, shuffled.
    """
    lines = []
    for i in range(n):
        svc = f"web-{i}.{NAMESPACE}.svc.{ZONE}"
        lines += [f"{svc} A", f"{svc} AAAA"] * 2
        lines += [f"web-{i}.{NAMESPACE}.other.svc.{ZONE} {t}" for t in ("A", "AAAA")]
        for suffix in (f"{NAMESPACE}.svc.{ZONE}", f"svc.{ZONE}", ZONE):
            lines += [f"api-{i}.example.com.{suffix} {t}" for t in ("A", "AAAA")]
        lines.append(f"_http._tcp.{svc} SRV")
    random.Random(seed).shuffle(lines)
    return lines


# -- dnsperf ---------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def dnsperf(port: int, files: list[tuple[Path, bool]], *, seconds: float, clients: int,
            outstanding: int, server_pid: int, rate: int | None = None) -> Run:
    """Run one dnsperf per (file, edns) at once, pinned to the client CPU; sum them."""
    procs = []
    cpu_before, wall_before = cpu_seconds(server_pid), time.monotonic()
    for path, edns in files:
        cmd = ["taskset", "-c", CLIENT_CPU, "dnsperf", "-s", "127.0.0.1", "-p", str(port),
               "-d", str(path), "-c", str(clients), "-q", str(outstanding),
               "-l", str(seconds), "-t", "2"]
        if edns:
            cmd.append("-e")
        if rate:
            cmd += ["-Q", str(rate), "-v"]
        # Files, not pipes: a verbose dnsperf blocked on a full pipe would stop sending.
        out = tempfile.TemporaryFile("w+")  # noqa: SIM115 - closed below, after wait()
        procs.append((subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT), out))
    outputs = []
    for proc, out in procs:
        proc.wait()
        out.seek(0)
        outputs.append(out.read())
        out.close()
    cpu = (cpu_seconds(server_pid) - cpu_before) / (time.monotonic() - wall_before)
    runs = [_parse(out) for out in outputs]
    latencies = sorted(float(m) for out in outputs
                       for m in re.findall(r"^> \S+ \S+ \S+ ([0-9.]+)$", out, re.M))
    rcodes: dict[str, int] = {}
    for run in runs:
        for code, count in run["rcodes"].items():
            rcodes[code] = rcodes.get(code, 0) + count
    completed = sum(r["completed"] for r in runs)
    return Run(
        qps=sum(r["qps"] for r in runs), sent=sum(r["sent"] for r in runs),
        completed=completed, lost=sum(r["lost"] for r in runs),
        avg_latency_ms=sum(r["avg"] * r["completed"] for r in runs) / max(completed, 1) * 1e3,
        rcodes=rcodes, server_cpu=cpu,
        p50_ms=_quantile(latencies, 0.50), p99_ms=_quantile(latencies, 0.99))


def _parse(out: str) -> dict:
    def number(label: str) -> float:
        m = re.search(rf"{label}:\s+([0-9.]+)", out)
        if m is None:
            raise RuntimeError(f"dnsperf output without {label!r}:\n{out[-2000:]}")
        return float(m.group(1))
    codes_line = re.search(r"Response codes:\s+(.*)", out)
    rcodes = {code: int(count) for code, count in
              re.findall(r"([A-Z]+) (\d+) \(", codes_line.group(1) if codes_line else "")}
    return {"qps": number("Queries per second"), "sent": int(number("Queries sent")),
            "completed": int(number("Queries completed")), "lost": int(number("Queries lost")),
            "avg": number(r"Average Latency \(s\)"), "rcodes": rcodes}


def _quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    return values[min(len(values) - 1, int(q * len(values)))] * 1e3


# -- servers ---------------------------------------------------------------------------


class Dnsmasq:
    """dnsmasq answering the same names from a hosts file (A; AAAA is NODATA; other
    names in the zone NXDOMAIN via ``--local``). A hosts file has no SRV, so SRV
    queries get NXDOMAIN, unless ``srv`` adds one ``srv-host`` line per Service,
    which dnsmasq searches linearly: that variant is measured on the mix too."""

    def __init__(self, workdir: Path, ips: dict[int, str], *, srv: bool = False) -> None:
        self.port = free_port()
        hosts = workdir / "hosts"
        hosts.write_text("".join(f"{ip} web-{i}.{NAMESPACE}.svc.{ZONE}\n"
                                 for i, ip in ips.items()))
        conf = workdir / "dnsmasq.conf"
        conf.write_text("".join(
            f"srv-host=_http._tcp.web-{i}.{NAMESPACE}.svc.{ZONE},"
            f"web-{i}.{NAMESPACE}.svc.{ZONE},80\n" for i in ips) if srv else "")
        self.proc = subprocess.Popen(
            ["taskset", "-c", SERVER_CPU, "dnsmasq", "--keep-in-foreground",
             f"--conf-file={conf}", f"--port={self.port}", "--listen-address=127.0.0.1",
             "--bind-interfaces", "--no-resolv", "--no-hosts", f"--addn-hosts={hosts}",
             f"--local=/{ZONE}/", "--user=root", "--pid-file=", "--cache-size=10000"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        poll(lambda: _answers(self.port, f"web-0.{NAMESPACE}.svc.{ZONE}."), timeout=10,
             what="dnsmasq")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _answers(port: int, name: str, qtype: str = "A") -> bool:
    query = dns.message.make_query(name, qtype)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.5)
        sock.sendto(query.to_wire(), ("127.0.0.1", port))
        reply = dns.message.from_wire(sock.recv(65535))
    return reply.rcode() == dns.rcode.NOERROR and bool(reply.answer)


def start_apiserver(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    log = open(workdir / "apiserver.log", "wb")  # noqa: SIM115 - lives as long as the process
    proc = subprocess.Popen(
        ["taskset", "-c", CLIENT_CPU, str(BIN / "mp-apiserver"), "--listen",
         f"127.0.0.1:{port}", "--storage-url", f"sqlite:///{workdir / 'state.db'}"],
        stdout=log, stderr=subprocess.STDOUT)
    url = f"https://127.0.0.1:{port}"

    def up() -> bool:
        if proc.poll() is not None:
            raise RuntimeError("mp-apiserver exited; see " + str(workdir / "apiserver.log"))
        if not (workdir / ADMIN_KUBECONFIG).exists():
            return False
        with Client(load_config(url, workdir / ADMIN_KUBECONFIG), timeout=1) as c:
            c.request("GET", "/readyz")
        return True
    poll(up, timeout=30, what="mp-apiserver")
    return proc, url


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def programming_latency(dnsd: DnsdProcess, url: str, count: int) -> dict:
    """Create ``count`` Services one by one; time from the POST to the first answer."""
    latencies = []
    query_socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    query_socket.settimeout(1)
    with Client(load_config(url, dnsd.kubeconfig)) as kube:
        for i in range(count):
            name = f"prog-{i}"
            query = dns.message.make_query(f"{name}.{NAMESPACE}.svc.{ZONE}.", "A").to_wire()
            started = time.perf_counter()
            kube.create(SERVICE, {"metadata": {"name": name,
                                               "annotations": {TRIGGER: now_rfc3339()}},
                                  "spec": {"ports": [{"name": "http", "port": 80}]}},
                        NAMESPACE)
            while True:
                query_socket.sendto(query, ("127.0.0.1", dnsd.port))
                reply = query_socket.recv(65535)
                if reply[3] & 0x0F == 0 and reply[6:8] != b"\x00\x00":
                    break
                time.sleep(0.0002)
            latencies.append((time.perf_counter() - started) * 1e3)
    query_socket.close()
    metric = re.search(r'dns_programming_duration_seconds_sum\{service_kind="cluster_ip"\} '
                       r'([0-9.e+-]+)\ndns_programming_duration_seconds_count\{service_kind='
                       r'"cluster_ip"\} (\d+)', dnsd.metrics())
    latencies.sort()
    return {
        "count": count,
        "p50_ms": _quantile([x / 1e3 for x in latencies], 0.5),
        "p99_ms": _quantile([x / 1e3 for x in latencies], 0.99),
        "max_ms": latencies[-1],
        "mean_ms": statistics.fmean(latencies),
        "metric_mean_ms": (float(metric.group(1)) / int(metric.group(2)) * 1e3
                           if metric and int(metric.group(2)) else None),
        "metric_count": int(metric.group(2)) if metric else 0,
    }


# -- main ------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=10, help="per dnsperf run")
    parser.add_argument("--creations", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3,
                        help="repeat the dnsperf runs; the best round is reported")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    need_tools()
    os.sched_setaffinity(0, {int(CLIENT_CPU)})

    results: dict = {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]}}
    with tempfile.TemporaryDirectory(prefix="mp-bench-dns-") as tmp:
        workdir = Path(tmp)
        api, url = start_apiserver(workdir)
        dnsd = DnsdProcess(url, workdir / "dnsd.log", extra_args=("--log-level", "warning"),
                           command_prefix=("taskset", "-c", SERVER_CPU),
                           kubeconfig=str(workdir / ADMIN_KUBECONFIG))
        dnsmasq = srv_dnsmasq = None
        try:
            print(f"creating {args.services} Services …", flush=True)
            ips = {}
            with Client(load_config(url, dnsd.kubeconfig)) as kube:
                for i in range(args.services):
                    created = kube.create(SERVICE, {
                        "metadata": {"name": f"web-{i}"},
                        "spec": {"ports": [{"name": "http", "port": 80}]}}, NAMESPACE)
                    ips[i] = created["spec"]["clusterIP"]
            started = time.monotonic()
            dnsd.start(timeout=60)
            print(f"mp-dnsd ready in {time.monotonic() - started:.1f}s", flush=True)
            dnsmasq = Dnsmasq(workdir, ips)

            files = {"a": workdir / "a.txt", "mix": workdir / "mix.txt"}
            files["a"].write_text("\n".join(a_hits(args.services)) + "\n")
            files["mix"].write_text("\n".join(pod_mix(args.services)) + "\n")

            assert dnsd.proc is not None
            servers = {"mp-dnsd": (dnsd.port, dnsd.proc.pid),
                       "dnsmasq": (dnsmasq.port, dnsmasq.proc.pid)}
            runs: dict[str, dict[str, list[Run]]] = {
                server: {"a_hits": [], "mix": [], "mix_10k": []} for server in servers}
            # Rounds alternate the servers, so both meet the same background load;
            # the best round is the one least disturbed by other tenants of the VM.
            for rnd in range(1, args.rounds + 1):
                for server, (port, pid) in servers.items():
                    print(f"round {rnd}/{args.rounds}, {server}: A hits, pod mix, mix at "
                          "10,000 qps …", flush=True)
                    runs[server]["a_hits"].append(dnsperf(
                        port, [(files["a"], False)], seconds=args.seconds, clients=8,
                        outstanding=500, server_pid=pid))
                    runs[server]["mix"].append(dnsperf(
                        port, [(files["mix"], False), (files["mix"], True)],
                        seconds=args.seconds, clients=4, outstanding=250, server_pid=pid))
                    runs[server]["mix_10k"].append(dnsperf(
                        port, [(files["mix"], False), (files["mix"], True)],
                        seconds=args.seconds, clients=4, outstanding=100, server_pid=pid,
                        rate=5000))
            for server, measured in runs.items():
                results[server] = {
                    "a_hits": asdict(max(measured["a_hits"], key=lambda r: r.qps)),
                    "mix": asdict(max(measured["mix"], key=lambda r: r.qps)),
                    "mix_10k": asdict(min(measured["mix_10k"],
                                          key=lambda r: r.p99_ms or float("inf"))),
                    "all_rounds": {k: [asdict(r) for r in v] for k, v in measured.items()},
                }
            dnsmasq.stop()
            print("dnsmasq with 1,000 srv-host lines: pod mix …", flush=True)
            srv_dnsmasq = Dnsmasq(workdir, ips, srv=True)
            results["dnsmasq_srv_mix"] = asdict(dnsperf(
                srv_dnsmasq.port, [(files["mix"], False), (files["mix"], True)],
                seconds=args.seconds, clients=4, outstanding=250,
                server_pid=srv_dnsmasq.proc.pid))
            print(f"programming latency over {args.creations} creations …", flush=True)
            results["programming"] = programming_latency(dnsd, url, args.creations)
        finally:
            for server in (dnsmasq, srv_dnsmasq):
                if server is not None:
                    server.stop()
            dnsd.stop()
            api.terminate()
            api.wait(timeout=10)
    report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


def report(results: dict) -> None:
    d, m = results["mp-dnsd"], results["dnsmasq"]
    print()
    print("best of the rounds (qps: highest; latency at 10k qps: lowest p99); all rounds "
          "are in --json.\n'per CPU-second' is queries answered per second of CPU the server "
          "used: what one whole core would do, even if other tenants took part of it.")
    print(f"{'':34}{'mp-dnsd':>12}{'dnsmasq':>12}{'dnsd/dnsmasq':>14}")
    for key, label in (("a_hits", "A hits, qps"), ("mix", "pod mix (½ EDNS0), qps")):
        print(f"{label:34}{d[key]['qps']:12,.0f}{m[key]['qps']:12,.0f}"
              f"{d[key]['qps'] / m[key]['qps']:14.2f}")
        print(f"{'  avg latency, ms':34}{d[key]['avg_latency_ms']:12.2f}"
              f"{m[key]['avg_latency_ms']:12.2f}")
        print(f"{'  server CPU':34}{d[key]['server_cpu']:12.0%}{m[key]['server_cpu']:12.0%}")
        dc, mc = (r[key]["qps"] / max(r[key]["server_cpu"], 1e-9) for r in (d, m))
        print(f"{'  per CPU-second of the server':34}{dc:12,.0f}{mc:12,.0f}{dc / mc:14.2f}")
        print(f"{'  lost':34}{d[key]['lost']:12,}{m[key]['lost']:12,}")
    for label, field in (("mix at 10k qps: achieved qps", "qps"),
                         ("  p50 latency, ms", "p50_ms"), ("  p99 latency, ms", "p99_ms")):
        fmt = "12,.0f" if field == "qps" else "12.3f"
        print(f"{label:34}{d['mix_10k'][field]:{fmt}}{m['mix_10k'][field]:{fmt}}")
    print(f"{'mix rcodes (mp-dnsd)':34}{d['mix']['rcodes']}")
    print(f"{'mix rcodes (dnsmasq)':34}{m['mix']['rcodes']}")
    srv = results["dnsmasq_srv_mix"]
    print(f"dnsmasq with 1,000 srv-host lines, pod mix: {srv['qps']:,.0f} qps "
          f"(CPU {srv['server_cpu']:.0%}); dnsd/that {d['mix']['qps'] / srv['qps']:.2f}")
    p = results["programming"]
    print(f"programming latency, {p['count']} creations (POST → first answer): "
          f"p50 {p['p50_ms']:.1f} ms, p99 {p['p99_ms']:.1f} ms, max {p['max_ms']:.1f} ms")
    if p["metric_mean_ms"] is not None:
        print(f"  dns_programming_duration_seconds (annotation → served): mean "
              f"{p['metric_mean_ms']:.1f} ms over {p['metric_count']}")


if __name__ == "__main__":
    main()
