#!/usr/bin/env python3
"""rcfleet benchmark against the lab (issue 9). Run through tests/bench/run (as root).

Sections (each figure: median of several runs, with min and max):
  upgrade  rolling upgrade 8.0.0 -> 8.1.0 on 3 app hosts x 2 instances, stand-in boot and drain
           fixed: total, floor (per batch drain + boot), pre-pull, overhead per instance; failed
           requests through Traefik under steady load meanwhile; cold and converged `up` on the
           same 1 db + 1 lb + 3 app lab
  fanout   `rcfleet status` on 1, 4 and 16 app hosts beside a sequential ssh loop and ansible
           ad-hoc gathering the containers and their state on every host
  plan     `rcfleet plan` on a generated inventory of 200 app hosts x 4 instances
Peak memory (max RSS, /usr/bin/time -v) of every rcfleet run is recorded.

Traffic goes only to the lab's own addresses (its bridge) and loopback.
"""

import argparse
import datetime
import json
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LAB = Path(os.environ.get("BENCH_LAB", ROOT / "tests/lab/lab"))
OUT = ROOT / "target/bench"
LAB_NAME = os.environ.get("BENCH_LAB_NAME", "bench")

BOOT_SECONDS = 5
FROM_RELEASE = "8.0.0"
TO_RELEASE = "8.1.0"
LOAD_RATE = 20.0

GOALS = {
    "upgrade_overhead_per_instance_s": ("<", 1.5),
    "status_ratio_16_1": ("<=", 1.5),
    "up_converged_s": ("<=", 2.0),
    "upgrade_failed_requests": ("==", 0),
    "plan_200x4_wall_s": ("<", 1.0),
    "plan_200x4_peak_mib": ("<", 100.0),
}


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def sh(cmd, check=True, capture=True, env=None, timeout=None):
    r = subprocess.run(cmd, capture_output=capture, text=True, env=env, timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError(f"{shlex.join(cmd)} exited {r.returncode}\n{r.stdout or ''}\n{r.stderr or ''}")
    return r


def stats(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values), "runs": values}


class Timed:
    def __init__(self, wall, rc, stdout, stderr, maxrss_kib, cpu=None):
        self.wall, self.rc, self.stdout, self.stderr, self.maxrss_kib = wall, rc, stdout, stderr, maxrss_kib
        self.cpu = cpu  # user + system seconds

    @property
    def peak_mib(self):
        return None if self.maxrss_kib is None else self.maxrss_kib / 1024


def timed(cmd, ok=(0,), env=None, label=None):
    """Runs cmd under /usr/bin/time -v; wall time measured here (monotonic), peak RSS from time."""
    with tempfile.NamedTemporaryFile("r", suffix=".time", dir=OUT, delete=False) as f:
        tfile = f.name
    t0 = time.monotonic()
    r = subprocess.run(["/usr/bin/time", "-v", "-o", tfile] + cmd, capture_output=True, text=True, env=env)
    wall = time.monotonic() - t0
    text = Path(tfile).read_text()
    os.unlink(tfile)
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    cpu = sum(float(x) for x in re.findall(r"(?:User|System) time \(seconds\): ([\d.]+)", text)) or None
    res = Timed(wall, r.returncode, r.stdout, r.stderr, int(m.group(1)) if m else None, cpu)
    if r.returncode not in ok:
        raise RuntimeError(f"{label or shlex.join(cmd)} exited {r.returncode}\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}")
    return res


def lab_up(app_hosts, light=False):
    cmd = [str(LAB), "up", "--name", LAB_NAME, "--app-hosts", str(app_hosts)] + (["--light"] if light else [])
    t0 = time.monotonic()
    sh(cmd, capture=True)
    log(f"lab up --app-hosts {app_hosts}: {time.monotonic() - t0:.1f}s")
    return lab_env()


def lab_env():
    out = sh([str(LAB), "env", "--name", LAB_NAME]).stdout
    env = {}
    for line in out.splitlines():
        if "=" in line and not line.startswith("#"):
            k, v = line.split("=", 1)
            env[k.strip()] = shlex.split(v)[0] if v.strip() else ""
    return env


def lab_down():
    subprocess.run([str(LAB), "down", "--name", LAB_NAME], capture_output=True, text=True)


def set_boot_seconds(inventory, seconds):
    """Appends STANDIN_BOOT_SECONDS to [rocketchat.env], the last table of the lab inventory."""
    text = Path(inventory).read_text()
    tables = re.findall(r"^\[([^\]]+)\]\s*$", text, flags=re.M)
    if not tables or tables[-1].strip() != "rocketchat.env":
        raise RuntimeError(f"{inventory}: [rocketchat.env] is not the last table; cannot add STANDIN_BOOT_SECONDS")
    if "STANDIN_BOOT_SECONDS" not in text:
        text = text.rstrip("\n") + f'\nSTANDIN_BOOT_SECONDS = "{seconds}"\n'
        Path(inventory).write_text(text)


def toml_int(inventory, key):
    m = re.search(rf"^{key}\s*=\s*(\d+)", Path(inventory).read_text(), flags=re.M)
    return int(m.group(1)) if m else None


def app_hosts(env):
    return [h for h in env["LAB_HOSTS"].split() if h.startswith("app")]


# ---------------------------------------------------------------------------------------------
# 1, 3, 4: upgrade under load, cold and converged up


def bench_upgrade(rcfleet, runs, converged_per_run):
    results = {"runs": []}
    for run in range(runs):
        log(f"upgrade run {run + 1}/{runs}: lab 1 db + 1 lb + 3 app")
        env = lab_up(3)
        inv = env["LAB_INVENTORY"]
        set_boot_seconds(inv, BOOT_SECONDS)
        drain = toml_int(inv, "drain_seconds")
        batch = toml_int(inv, "batch_size") or 1
        instances = 2 * len(app_hosts(env))
        base = [rcfleet, "-i", inv]

        cold = timed(base + ["up"], label="cold up")
        log(f"  cold up {cold.wall:.2f}s, peak {cold.peak_mib:.1f} MiB")
        conv = []
        for _ in range(converged_per_run):
            c = timed(base + ["up"], label="converged up")
            conv.append(c)
            log(f"  converged up {c.wall:.2f}s, peak {c.peak_mib:.1f} MiB")

        # Steady load through Traefik while upgrading.
        lb = env["LAB_ADDR_LB"]
        stop_file = OUT / f"load-{run}.stop"
        load_out = OUT / f"load-{run}.json"
        for p in (stop_file, load_out):
            p.unlink(missing_ok=True)
        load = subprocess.Popen([sys.executable, str(ROOT / "tests/bench/loadgen.py"),
                                 "--url", f"http://{lb}/api/info", "--host", env["LAB_DOMAIN"],
                                 "--rate", str(LOAD_RATE), "--stop-file", str(stop_file),
                                 "--out", str(load_out), "--max-seconds", "900"])
        try:
            time.sleep(2)  # the load is steady before the upgrade starts
            # BENCH_STRATEGY=start-first|stop-first: that strategy instead of the inventory's.
            strategy = ["--strategy", os.environ["BENCH_STRATEGY"]] if os.environ.get("BENCH_STRATEGY") else []
            up = timed(base + ["--json", "upgrade", "--release", TO_RELEASE] + strategy, label="upgrade")
            time.sleep(2)
        finally:
            stop_file.touch()
            try:
                load.wait(timeout=30)
            except subprocess.TimeoutExpired:
                load.kill()  # our own child, by pid
                load.wait()
        loadres = json.loads(load_out.read_text())
        outcome = json.loads(up.stdout)
        phases = {p["phase"]: p["seconds"] for p in outcome["phases"]}
        per_instance = {i["instance"]: i["seconds"] for i in outcome["instances"]}
        batches = 1 + -(-(instances - 1) // batch)  # canary, then ceil((n-1)/batch)
        # Start-first boots the new instance while the old one still serves, then drains it.
        start_first = os.environ.get("BENCH_STRATEGY") == "start-first"
        floor = batches * (max(drain, BOOT_SECONDS) if start_first else drain + BOOT_SECONDS)
        prepull = phases.get("pre-pull", 0.0)
        backup = phases.get("backup", 0.0)
        overhead = (up.wall - floor - prepull) / instances
        r = {
            "cold_up_s": cold.wall, "cold_up_peak_mib": cold.peak_mib,
            "converged_up_s": [c.wall for c in conv], "converged_up_peak_mib": [c.peak_mib for c in conv],
            "upgrade_wall_s": up.wall, "upgrade_total_phase_s": phases.get("total"),
            "upgrade_peak_mib": up.peak_mib,
            "instances": instances, "batches": batches, "drain_s": drain, "boot_s": BOOT_SECONDS,
            "floor_s": floor, "prepull_s": prepull, "backup_s": backup, "checks_s": phases.get("checks"),
            "overhead_per_instance_s": overhead, "phases": outcome["phases"], "instance_seconds": per_instance,
            "log": outcome.get("log"),
            "load": {k: loadres[k] for k in ("target_rate", "seconds", "sent", "ok", "failed", "rate", "ok_rate",
                                               "latency_p50_ms", "latency_max_ms", "failures")},
        }
        # The run log, for profiling the overhead (copied: the lab's folder goes with it).
        logs = Path(inv).parent / ".rcfleet" / "logs"
        if logs.is_dir():
            dest = OUT / "logs" / f"upgrade-run{run + 1}"
            shutil.rmtree(dest, ignore_errors=True)
            shutil.copytree(logs, dest)
            r["logs_copy"] = str(dest.relative_to(ROOT))
        log(f"  upgrade {up.wall:.2f}s (floor {floor}s, pre-pull {prepull:.2f}s, backup {backup:.2f}s), "
            f"overhead/instance {overhead:.2f}s, peak {up.peak_mib:.1f} MiB; "
            f"load {loadres['sent']} sent, {loadres['failed']} failed, {loadres['rate']}/s")
        results["runs"].append(r)
    rs = results["runs"]
    results["summary"] = {
        "cold_up_s": stats([r["cold_up_s"] for r in rs]),
        "converged_up_s": stats([v for r in rs for v in r["converged_up_s"]]),
        "upgrade_wall_s": stats([r["upgrade_wall_s"] for r in rs]),
        "floor_s": stats([r["floor_s"] for r in rs]),
        "prepull_s": stats([r["prepull_s"] for r in rs]),
        "backup_s": stats([r["backup_s"] for r in rs]),
        "overhead_per_instance_s": stats([r["overhead_per_instance_s"] for r in rs]),
        "failed_requests": stats([r["load"]["failed"] for r in rs]),
        "requests_sent": stats([r["load"]["sent"] for r in rs]),
        "request_rate": stats([r["load"]["rate"] for r in rs]),
        "peak_mib_up": stats([r["cold_up_peak_mib"] for r in rs] + [v for r in rs for v in r["converged_up_peak_mib"]]),
        "peak_mib_upgrade": stats([r["upgrade_peak_mib"] for r in rs]),
    }
    return results


# ---------------------------------------------------------------------------------------------
# 2: fan-out


DOCKER_PS = "docker ps -a --format '{{.Names}} {{.State}} {{.Status}}'"
# The same command for ansible, whose arguments are Jinja templates.
ANSIBLE_DOCKER_PS = "docker ps -a --format '{% raw %}{{.Names}} {{.State}} {{.Status}}{% endraw %}'"


def ssh_base(env):
    return ["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o",
            f"UserKnownHostsFile={env['LAB_KNOWN_HOSTS']}", "-o", "ConnectTimeout=5",
            "-o", "ControlMaster=no", "-i", env["LAB_SSH_KEY"]]


def ssh_loop_cmd(env):
    """The manual procedure: one ssh per host, one after the other."""
    hosts = env["LAB_HOSTS"].split()
    lines = []
    for h in hosts:
        addr = env[f"LAB_ADDR_{h.upper()}"]
        lines.append(f"echo '== {h}'; {shlex.join(ssh_base(env) + ['root@' + addr, DOCKER_PS])}")
    return ["bash", "-c", "set -e; " + "; ".join(lines)]


def ansible_setup(env, venv):
    inv = OUT / "ansible-inventory.ini"
    lines = ["[lab]"]
    for h in env["LAB_HOSTS"].split():
        lines.append(f"{h} ansible_host={env['LAB_ADDR_' + h.upper()]}")
    lines += ["", "[lab:vars]", "ansible_user=root",
              f"ansible_ssh_private_key_file={env['LAB_SSH_KEY']}",
              f"ansible_ssh_common_args='-o UserKnownHostsFile={env['LAB_KNOWN_HOSTS']} -o StrictHostKeyChecking=yes'",
              "ansible_python_interpreter=/usr/bin/python3"]
    inv.write_text("\n".join(lines) + "\n")
    cfg = OUT / "ansible.cfg"  # empty: ansible's defaults, no config found elsewhere
    cfg.write_text("[defaults]\n")
    aenv = dict(os.environ)
    aenv.update({
        "ANSIBLE_HOST_KEY_CHECKING": "True",
        # No ControlPersist: every run connects afresh, as rcfleet and the ssh loop do.
        "ANSIBLE_SSH_ARGS": "-o ControlMaster=no",
        "ANSIBLE_LOCAL_TEMP": str(OUT / "ansible-tmp"),
        "ANSIBLE_CONFIG": str(cfg),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_DEPRECATION_WARNINGS": "False",
    })
    n = len(env["LAB_HOSTS"].split())
    cmd = [str(venv / "bin/ansible"), "all", "-i", str(inv), "-m", "shell", "-a", ANSIBLE_DOCKER_PS, "-f", str(max(n, 20)),
           "-o"]
    return cmd, aenv


def bench_fanout(rcfleet, sizes, runs, venv):
    results = {"sizes": {}}
    for n in sizes:
        log(f"fan-out: lab 1 db + 1 lb + {n} app (full hosts, deployed with up)")
        env = lab_up(n)
        inv = env["LAB_INVENTORY"]
        set_boot_seconds(inv, 0)
        cold = timed([rcfleet, "-i", inv, "up"], label=f"up ({n} app hosts)")
        log(f"  up {cold.wall:.1f}s")
        acmd, aenv = ansible_setup(env, venv) if venv else (None, None)
        row = {"hosts": len(env["LAB_HOSTS"].split()), "status": [], "status_peak_mib": [], "ssh_loop": [],
               "ansible": [], "cold_up_s": cold.wall, "status_healthy": []}
        for rep in range(runs):
            s = timed([rcfleet, "-i", inv, "--json", "status"], ok=(0, 3), label="status")
            row["status"].append(s.wall)
            row["status_peak_mib"].append(s.peak_mib)
            row.setdefault("status_cpu_s", []).append(s.cpu)
            try:
                row["status_healthy"].append(json.loads(s.stdout).get("healthy"))
            except json.JSONDecodeError:
                row["status_healthy"].append(None)
            l = timed(ssh_loop_cmd(env), label="ssh loop")
            row["ssh_loop"].append(l.wall)
            if acmd:
                try:
                    a = timed(acmd, env=aenv, label="ansible")
                    row["ansible"].append(a.wall)
                    if rep == 0:
                        row["ansible_sample"] = a.stdout[:2000]
                except RuntimeError as err:  # reported, not fatal: the other figures still count
                    row["ansible_error"] = str(err)[:2000]
                    log(f"  ansible failed: {str(err)[:500]}")
                    acmd = None
            if rep == 0:
                row["ssh_loop_sample"] = l.stdout[:2000]
            log(f"  rep {rep + 1}: status {s.wall:.2f}s (cpu {s.cpu or 0:.2f}s)  ssh loop {l.wall:.2f}s"
                + (f"  ansible {row['ansible'][-1]:.2f}s" if acmd else ""))
        row["summary"] = {k: stats(row[k]) for k in ("status", "ssh_loop", "ansible", "status_peak_mib")}
        # Ratios within this run: per repetition, then the median.
        row["ratio_ssh_loop_to_status"] = stats([l / s for l, s in zip(row["ssh_loop"], row["status"])])
        if row["ansible"] and len(row["ansible"]) == len(row["status"]):
            row["ratio_ansible_to_status"] = stats([a / s for a, s in zip(row["ansible"], row["status"])])
        results["sizes"][str(n)] = row
    if "1" in results["sizes"] and "16" in results["sizes"]:
        one, sixteen = results["sizes"]["1"], results["sizes"]["16"]
        results["ratio_16_1"] = {
            tool: stats([b / a for a, b in zip(one[tool], sixteen[tool])])
            for tool in ("status", "ssh_loop", "ansible") if one[tool] and len(one[tool]) == len(sixteen[tool])
        }
    return results


# ---------------------------------------------------------------------------------------------
# 5: plan at scale


def plan_inventory(path, app_hosts=200, instances=4):
    text = (ROOT / "inventory.example.toml").read_text()
    head, rest = text.split("[[hosts]]", 1)
    tail = rest[rest.index("\n# Container images"):] if "\n# Container images" in rest else rest[rest.index("[images]"):]
    hosts = [
        '[[hosts]]\nname = "db"\naddress = "10.0.0.10"\nroles = ["database", "monitoring"]\n',
        '[[hosts]]\nname = "lb"\naddress = "10.0.0.20"\nroles = ["traefik"]\n',
    ]
    for i in range(app_hosts):
        hosts.append(f'[[hosts]]\nname = "app{i + 1}"\naddress = "10.{1 + i // 250}.{i % 250}.31"\n'
                     f'roles = ["rocketchat"]\ninstances = {instances}\nport = 3000\nmetrics_port = 9458\n')
    path.write_text(head + "\n".join(hosts) + "\n" + tail)


def bench_plan(rcfleet, runs):
    d = OUT / "plan-200x4"
    d.mkdir(parents=True, exist_ok=True)
    inv = d / "inventory.toml"
    plan_inventory(inv)
    env = dict(os.environ, GRAFANA_ADMIN_PASSWORD="bench-not-a-secret", ROCKETCHAT_LICENSE="bench")
    walls, peaks, size = [], [], None
    for _ in range(runs):
        r = timed([rcfleet, "-i", str(inv), "plan"], env=env, label="plan")
        walls.append(r.wall)
        peaks.append(r.peak_mib)
        size = len(r.stdout)
    log(f"plan 200x4: {statistics.median(walls):.3f}s, {statistics.median(peaks):.1f} MiB, {size} bytes out")
    # With --out: every file of every host rendered and written (what a reviewer would diff).
    out_walls, out_peaks, files = [], [], 0
    for _ in range(runs):
        out_dir = d / "out"
        shutil.rmtree(out_dir, ignore_errors=True)
        r = timed([rcfleet, "-i", str(inv), "plan", "--out", str(out_dir)], env=env, label="plan --out")
        out_walls.append(r.wall)
        out_peaks.append(r.peak_mib)
        files = sum(len(fs) for _, _, fs in os.walk(out_dir))
    shutil.rmtree(d / "out", ignore_errors=True)
    log(f"plan --out 200x4: {statistics.median(out_walls):.3f}s, {statistics.median(out_peaks):.1f} MiB, {files} files")
    return {"inventory": str(inv.relative_to(ROOT)), "app_hosts": 200, "instances_per_host": 4,
            "output_bytes": size, "wall_s": stats(walls), "peak_mib": stats(peaks),
            "out_files": files, "out_wall_s": stats(out_walls), "out_peak_mib": stats(out_peaks)}


# ---------------------------------------------------------------------------------------------
# report


def fmt(s, unit="s", digits=2):
    if not s:
        return "n/a"
    f = f"{{:.{digits}f}}"
    if s["n"] == 1:
        return f"{f.format(s['median'])}{unit}"
    return f"{f.format(s['median'])}{unit} ({f.format(s['min'])}–{f.format(s['max'])})"


def check(goal, value):
    if value is None:
        return "n/a"
    op, limit = GOALS[goal]
    ok = {"<": value < limit, "<=": value <= limit, "==": value == limit}[op]
    return f"{'met' if ok else 'MISSED'} ({op} {limit:g})"


def table(res):
    rows = [("measure", "median (min–max)", "goal")]
    u = res.get("upgrade")
    if u:
        s = u["summary"]
        r0 = u["runs"][0]
        rows += [
            (f"upgrade {FROM_RELEASE}->{TO_RELEASE}, 3 app x 2, boot {BOOT_SECONDS}s, drain {r0['drain_s']}s: total",
             fmt(s["upgrade_wall_s"]), ""),
            (f"  floor ({r0['batches']} batches x (drain + boot))", fmt(s["floor_s"]), ""),
            ("  pre-pull", fmt(s["prepull_s"]), ""),
            ("  backup (counted in overhead)", fmt(s["backup_s"]), ""),
            ("  overhead per instance", fmt(s["overhead_per_instance_s"]),
             check("upgrade_overhead_per_instance_s", s["overhead_per_instance_s"]["median"])),
            (f"failed requests during upgrade ({LOAD_RATE:g}/s offered)", fmt(s["failed_requests"], "", 0),
             check("upgrade_failed_requests", s["failed_requests"]["max"])),
            ("  request rate held", fmt(s["request_rate"], "/s", 1), ""),
            ("up, cold (1 db + 1 lb + 3 app)", fmt(s["cold_up_s"]), ""),
            ("up, converged", fmt(s["converged_up_s"]), check("up_converged_s", s["converged_up_s"]["median"])),
        ]
    f = res.get("fanout")
    if f:
        for n, row in f["sizes"].items():
            sm = row["summary"]
            rows.append((f"status, {n} app host(s) ({row['hosts']} hosts)", fmt(sm["status"]), ""))
            rows.append(("  ssh loop (sequential)", fmt(sm["ssh_loop"]),
                         f"x{row['ratio_ssh_loop_to_status']['median']:.2f} of status"))
            if sm["ansible"] and "ratio_ansible_to_status" in row:
                rows.append(("  ansible ad-hoc", fmt(sm["ansible"]),
                             f"x{row['ratio_ansible_to_status']['median']:.2f} of status"))
        for tool, r in f.get("ratio_16_1", {}).items():
            rows.append((f"ratio 16/1 app hosts: {tool}", fmt(r, "", 2),
                         check("status_ratio_16_1", r["median"]) if tool == "status" else ""))
    p = res.get("plan")
    if p:
        rows.append(("plan, 200 app hosts x 4 instances: wall", fmt(p["wall_s"], "s", 3),
                     check("plan_200x4_wall_s", p["wall_s"]["median"])))
        rows.append(("  peak memory", fmt(p["peak_mib"], " MiB", 1), check("plan_200x4_peak_mib", p["peak_mib"]["median"])))
        rows.append((f"plan --out (writes all {p['out_files']} files): wall", fmt(p["out_wall_s"], "s", 3), ""))
        rows.append(("  peak memory", fmt(p["out_peak_mib"], " MiB", 1), ""))
    if u:
        rows.append(("peak memory: up", fmt(u["summary"]["peak_mib_up"], " MiB", 1), ""))
        rows.append(("peak memory: upgrade", fmt(u["summary"]["peak_mib_upgrade"], " MiB", 1), ""))
    if f:
        peaks = [v for row in f["sizes"].values() for v in row["status_peak_mib"]]
        rows.append(("peak memory: status (1-16 app hosts)", fmt(stats(peaks), " MiB", 1), ""))
    w = [max(len(r[i]) for r in rows) for i in range(3)]
    out = []
    for i, r in enumerate(rows):
        out.append(f"| {r[0]:<{w[0]}} | {r[1]:<{w[1]}} | {r[2]:<{w[2]}} |")
        if i == 0:
            out.append(f"|{'-' * (w[0] + 2)}|{'-' * (w[1] + 2)}|{'-' * (w[2] + 2)}|")
    return "\n".join(out)


def machine():
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kib = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
        mem = f"{kib / 1024 / 1024:.0f} GiB"
    except (OSError, AttributeError):
        pass
    load = os.getloadavg()
    return {"cpu": cpu, "cores": os.cpu_count(), "memory": mem, "kernel": platform.release(),
            "loadavg_at_start": [round(x, 2) for x in load]}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", action="append", choices=["upgrade", "fanout", "plan"], help="run only these sections")
    ap.add_argument("--runs", type=int, default=3, help="runs of each long measurement (default 3)")
    ap.add_argument("--plan-runs", type=int, default=7)
    ap.add_argument("--converged-per-run", type=int, default=3)
    ap.add_argument("--sizes", default="1,4,16", help="app hosts for the fan-out (default 1,4,16)")
    ap.add_argument("--no-ansible", action="store_true")
    ap.add_argument("--rcfleet", required=True)
    ap.add_argument("--venv", default=str(OUT / "venv"))
    ap.add_argument("--out", default=str(OUT / "results.json"))
    a = ap.parse_args()
    sections = a.only or ["upgrade", "fanout", "plan"]
    OUT.mkdir(parents=True, exist_ok=True)
    res = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "machine": machine(), "rcfleet": a.rcfleet,
           "commit": os.environ.get("BENCH_REV") or
                     sh(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], check=False).stdout.strip() + " + working tree",
           "goals": {k: f"{op} {v}" for k, (op, v) in GOALS.items()}}
    started = time.monotonic()
    try:
        if "plan" in sections:
            res["plan"] = bench_plan(a.rcfleet, a.plan_runs)
        if "upgrade" in sections:
            res["upgrade"] = bench_upgrade(a.rcfleet, a.runs, a.converged_per_run)
        if "fanout" in sections:
            venv = None if a.no_ansible else Path(a.venv)
            sizes = [int(x) for x in a.sizes.split(",")]
            res["fanout"] = bench_fanout(a.rcfleet, sizes, a.runs, venv)
    finally:
        if "upgrade" in sections or "fanout" in sections:
            lab_down()
    res["seconds"] = round(time.monotonic() - started, 1)
    res["table"] = table(res)
    Path(a.out).write_text(json.dumps(res, indent=1) + "\n")
    print(res["table"])
    print(f"\nmachine: {res['machine']['cpu']}, {res['machine']['cores']} cores, {res['machine']['memory']}; "
          f"{res['date']}; commit {res['commit']}; {res['seconds']}s\nJSON: {a.out}")


if __name__ == "__main__":
    main()
