#!/usr/bin/env python3
"""flowcat `run --each` next to Duo's official Python client, side by side in one run.

The workload: "Associate Phone to a User" for N users who have no phone yet, each getting a new
number: per user a user lookup, a phone lookup, a phone creation and an association, four
signed Admin API calls. flowcat runs the catalog flow `duo.admin.associate_phone` over a CSV
file (`flowcat run duo.admin.associate_phone --each rows.csv --concurrency C`, the release
binary, one process); the peer (`duo_peer.py`) makes the same calls with `duo_client` and a
thread pool of C threads. Both talk to one `flowcat sim` on 127.0.0.1, seeded with the N users,
whose state is reset (`POST /sim/reset`) before every run so that every run does the same work.
After every run the simulator's request counts (`GET /sim/stats`) are checked: N of each of
the four calls, nothing else.

Runs alternate (flowcat, peer, flowcat --no-journal, flowcat, peer, …) for each concurrency, at
0 ms and then at 50 ms of simulator latency (`flowcat sim --latency-ms 50`). For each run it
measures the client process alone (the simulator is another process): wall time from start to
exit (flows/s = N / wall) and CPU time, user + system, of the process and its threads
(`os.wait4`), divided by N. It prints medians and ratios.

Normally started by `run.sh`, which builds the binary and makes the virtual environment; see
docs/benchmarks.md ("Side by side with Duo's Python client").
"""

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
FLOW = "duo.admin.associate_phone"
IKEY = "DIBENCHADMIN00000001"
# A key made up for the simulator; it only ever goes to the simulator's own process, in a file.
SKEY = "benchpeersadminsecretkey0000000000000000"
ROUTES = {
    "GET /admin/v1/users",
    "GET /admin/v1/phones",
    "POST /admin/v1/phones",
    "POST /admin/v1/users/{user_id}/phones",
}
DEADLINE_S = 600  # a run that takes longer than this is killed and the bench fails


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--flowcat", required=True, help="the flowcat binary (release)")
    p.add_argument("--python", required=True, help="the virtual environment's python, with duo_client")
    p.add_argument("--n", type=int, default=3000, help="users per run at 0 ms latency (default 3000)")
    p.add_argument("--n-serial", type=int, default=1000,
                   help="users per run at 0 ms latency and concurrency 1 (default 1000)")
    p.add_argument("--rounds", type=int, default=3, help="runs of each client per setting (default 3)")
    p.add_argument("--concurrency", default="16,1", help="comma-separated (default 16,1)")
    p.add_argument("--latency-flows", type=int, default=20,
                   help="users per run at 50 ms latency, per unit of concurrency (default 20)")
    p.add_argument("--no-latency", action="store_true", help="skip the 50 ms latency runs")
    p.add_argument("--smoke", action="store_true",
                   help="a quick check that everything still works: N=20, one round, 10 ms latency")
    p.add_argument("--json", help="also write every run's numbers to this file")
    a = p.parse_args()
    if a.smoke:
        a.n, a.n_serial, a.rounds, a.latency_flows = 20, 20, 1, 2
    concurrencies = [int(c) for c in a.concurrency.split(",")]
    latency = 10 if a.smoke else 50

    work = tempfile.mkdtemp(prefix="flowcat-peers-")
    try:
        results = []
        print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.node()}, "
              f"{os.cpu_count()} cores, load average {load()} at start")
        settings = [(0, a.n)]
        if not a.no_latency:
            settings.append((latency, None))
        for lat, n in settings:
            for c in concurrencies:
                if n is None:
                    count = max(a.latency_flows * c, 2)
                else:
                    count = n if c > 1 else min(n, a.n_serial)
                results += bench(a, work, lat, c, count)
        print(f"# load average {load()} at the end")
        if a.json:
            with open(a.json, "w") as f:
                json.dump(results, f, indent=1)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def load():
    try:
        return " ".join(open("/proc/loadavg").read().split()[:3])
    except OSError:
        return "?"


def bench(a, work, latency, c, n):
    """One simulator seeded with n users; the clients alternate against it."""
    case = os.path.join(work, f"lat{latency}-c{c}")
    os.makedirs(case)
    seed = {
        "integrations": [{"name": "duo_admin", "kind": "duo_admin", "ikey": IKEY, "skey": SKEY}],
        "users": [{"username": f"bench{i:06d}", "email": f"bench{i:06d}@example.com", "phones": []}
                  for i in range(n)],
        "phones": [],
        "id_seed": 7,
    }
    with open(os.path.join(case, "seed.json"), "w") as f:
        json.dump(seed, f)
    skey_file = os.path.join(case, "skey")
    with open(skey_file, "w") as f:
        f.write(SKEY)
    rows = os.path.join(case, "rows.csv")
    with open(rows, "w") as f:
        f.write("username,number,type,platform,name\n")
        for i in range(n):
            f.write(f"bench{i:06d},+1555{i:07d},mobile,google android,bench phone {i}\n")
    integrations = os.path.join(case, "integrations.yaml")
    sim_out = open(os.path.join(case, "sim.out"), "w+")
    sim = subprocess.Popen(
        [a.flowcat, "sim", "--host", "127.0.0.1", "--port", "0", "--seed", "seed.json",
         "--write-integrations", integrations, "--latency-ms", str(latency)],
        cwd=case, stdout=sim_out, stderr=subprocess.STDOUT, env=clean_env(case))
    try:
        port = wait_for_port(sim, sim_out)
        clients = [
            ("flowcat", lambda state: [a.flowcat, "--state-dir", state, "-q", "run", FLOW, "--each", rows,
                                       "--concurrency", str(c), "--integrations", integrations]),
            ("duo_client", lambda state: [a.python, os.path.join(HERE, "duo_peer.py"), "--rows", rows,
                                          "--host", "127.0.0.1", "--port", str(port), "--ikey", IKEY,
                                          "--skey-file", skey_file, "--concurrency", str(c)]),
        ]
        if latency == 0:
            clients.append(("flowcat --no-journal", lambda state: [
                a.flowcat, "--state-dir", state, "-q", "run", FLOW, "--each", rows, "--concurrency", str(c),
                "--integrations", integrations, "--no-journal"]))
        runs = []
        for r in range(a.rounds):
            for name, argv in clients:
                control(port, "POST", "/sim/reset")
                state = os.path.join(case, f"state-{name.replace(' ', '')}-{r}")  # a fresh journal each run
                run = measure(argv(state), case, n)
                check_stats(control(port, "GET", "/sim/stats"), n, name)
                run.update(client=name, round=r, latency_ms=latency, concurrency=c, n=n)
                runs.append(run)
        report(runs, latency, c, n)
        return runs
    finally:
        sim.terminate()
        sim.wait(timeout=30)
        sim_out.close()


def clean_env(home):
    """The environment without flowcat's own variables, so no local catalog, integrations file or
    state folder of the user's leaks in; the cache folder is the run's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWCAT_")}
    env["XDG_CACHE_HOME"] = os.path.join(home, "cache")
    env["NO_COLOR"] = "1"
    return env


def wait_for_port(sim, out):
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        out.seek(0)
        text = out.read()
        if "listening on http://127.0.0.1:" in text:
            return int(text.split("listening on http://127.0.0.1:")[1].split(";")[0].split()[0])
        if sim.poll() is not None:
            sys.exit(f"error: flowcat sim exited: {text.strip()}")
        time.sleep(0.05)
    sys.exit("error: flowcat sim did not start within 60 s")


def control(port, method, path):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
                                 data=b"{}" if method == "POST" else None,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.load(r)


def measure(argv, cwd, n):
    """Runs one client process; its wall time and its own CPU time (user + system, every thread)."""
    out_path = os.path.join(cwd, "client.out")
    with open(out_path, "w") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env=clean_env(cwd))
        deadline = time.monotonic() + DEADLINE_S
        while True:
            pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                proc.kill()
                sys.exit(f"error: `{' '.join(argv)}` took over {DEADLINE_S} s")
            time.sleep(0.002)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"error: `{' '.join(argv)}` exited with {proc.returncode}:\n{open(out_path).read()[-3000:]}")
    cpu = ru.ru_utime + ru.ru_stime
    run = {"wall_s": wall, "cpu_s": cpu, "flows_per_s": n / wall, "cpu_ms_per_flow": cpu * 1000 / n,
           "max_rss_kib": ru.ru_maxrss}
    text = open(out_path).read().strip()
    if text.startswith("{"):  # the peer's own account of its loop, without interpreter start-up
        peer = json.loads(text.splitlines()[-1])
        run["loop_flows_per_s"] = n / peer["loop_wall_s"]
        run["loop_cpu_ms_per_flow"] = peer["loop_cpu_s"] * 1000 / n
    return run


def check_stats(stats, n, name):
    """Both clients must have done the same work: each of the four calls once per user."""
    counts = {k: v for k, v in stats.items() if not k.startswith("/sim") and v}
    want = {r: n for r in ROUTES}
    if counts != want:
        sys.exit(f"error: {name} did not send the expected calls: {counts}, expected {want}")


def report(runs, latency, c, n):
    def med(client, key):
        vals = [r[key] for r in runs if r["client"] == client and key in r]
        return statistics.median(vals) if vals else None

    names = list(dict.fromkeys(r["client"] for r in runs))
    print(f"\n## {latency} ms latency, concurrency {c}, {n} users, {len(runs) // len(names)} rounds (medians)")
    print(f"{'client':<22} {'flows/s':>9} {'CPU ms/flow':>12} {'flows/s (each run)':<30}")
    for name in names:
        each = ", ".join(f"{r['flows_per_s']:.0f}" for r in runs if r["client"] == name)
        print(f"{name:<22} {med(name, 'flows_per_s'):>9.0f} {med(name, 'cpu_ms_per_flow'):>12.3f} {each}")
        if med(name, "loop_flows_per_s") is not None:
            print(f"{'  (its loop alone)':<22} {med(name, 'loop_flows_per_s'):>9.0f} "
                  f"{med(name, 'loop_cpu_ms_per_flow'):>12.3f}")
    fc, py = "flowcat", "duo_client"
    print(f"flowcat / duo_client: throughput {med(fc, 'flows_per_s') / med(py, 'flows_per_s'):.2f}x, "
          f"CPU per flow {med(fc, 'cpu_ms_per_flow') / med(py, 'cpu_ms_per_flow'):.2f}x "
          f"(duo_client uses {med(py, 'cpu_ms_per_flow') / med(fc, 'cpu_ms_per_flow'):.1f}x flowcat's CPU)")
    if latency:
        print(f"wall per flow x concurrency: flowcat {c * 1000 / med(fc, 'flows_per_s'):.0f} ms, "
              f"duo_client {c * 1000 / med(py, 'flows_per_s'):.0f} ms "
              f"(critical path: 3 round trips for flowcat, 4 for the sequential client)")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
