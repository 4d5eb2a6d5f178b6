#!/usr/bin/env python3
"""rcfleet benchmark against the lab (issues 9, 17). Run through tests/bench/run (as root).

Sections (each figure: median of several runs, with min and max):
  upgrade  on 3 app hosts x 2 instances, stand-in boot and drain fixed, both strategies
           (start-first and stop-first, when `rcfleet upgrade --help` lists them) one release
           step each on the same fleet: total, floor, pre-pull, overhead per instance; failed
           requests through Traefik under steady load, and the capacity held (the minimum
           number of instances UP in Traefik's API, sampled every 100 ms); cold and converged
           `up` on the same 5 hosts (1 db + 1 lb + 3 app)
  fanout   `rcfleet status` on 1, 4, 16, 32 app hosts beside a sequential ssh loop and ansible
           ad-hoc gathering the containers and their state on every host; one lab, grown
  plan     `rcfleet plan` on a generated inventory of 200 app hosts x 4 instances
Peak memory (max RSS, /usr/bin/time -v) of every rcfleet run is recorded. The results go to
target/bench/results.json; tests/bench/readme_table.py renders the table from it (printed here,
and put in the README by that script).

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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from readme_table import GOALS, render_table  # noqa: E402  (the table is rendered from results.json)

ROOT = Path(__file__).resolve().parents[2]
LAB = Path(os.environ.get("BENCH_LAB", ROOT / "tests/lab/lab"))
OUT = ROOT / "target/bench"
LAB_NAME = os.environ.get("BENCH_LAB_NAME", "bench")

BOOT_SECONDS = 5
FROM_RELEASE = "8.0.0"
# Upgrade steps from FROM_RELEASE, one per strategy measured on the same fleet.
UPGRADE_STEPS = ["8.0.1", "8.1.0"]
LOAD_RATE = 20.0
CAPACITY_INTERVAL = 0.1



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


def machine_busy_seconds():
    """CPU seconds the whole machine spent busy since boot (every core, every process: the lab's
    sshd and Docker engines too), from /proc/stat's first line."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def cpu_by_program():
    """CPU seconds each program has used (utime + stime, and those of its reaped children: an
    sshd listener carries its finished sessions and the commands they ran), by program name,
    over every process of the machine."""
    used = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        name, fields = stat[stat.find("(") + 1:stat.rfind(")")], stat[stat.rfind(")") + 2:].split()
        used[int(pid)] = (name, sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK"))
    return used


def cpu_used_since(before, top=6):
    """The programs that used the most CPU since the `before` snapshot of cpu_by_program()."""
    by_name = {}
    for pid, (name, seconds) in cpu_by_program().items():
        if pid == os.getpid():  # the benchmark, which reaps the timed command (counted apart)
            continue
        spent = seconds - before.get(pid, (name, 0.0))[1]
        if spent > 0:
            by_name[name] = by_name.get(name, 0.0) + spent
    return dict(sorted(((n, round(t, 3)) for n, t in by_name.items()), key=lambda item: -item[1])[:top])


def wait_for_quiet(busy_below=0.5, window=1.0, max_seconds=20.0):
    """Waits until the machine was busy less than `busy_below` of its CPU time over `window`
    seconds (or `max_seconds` passed): `up` leaves freshly started stand-ins warming up, and a
    measurement taken then times their start as much as the command. Returns (seconds waited,
    the busy fraction of the last window)."""
    started = time.monotonic()
    while True:
        busy0 = machine_busy_seconds()
        time.sleep(window)
        busy = (machine_busy_seconds() - busy0) / (window * os.cpu_count())
        if busy < busy_below or time.monotonic() - started >= max_seconds:
            return time.monotonic() - started, busy


class Timed:
    def __init__(self, wall, rc, stdout, stderr, maxrss_kib, cpu=None, machine_cpu=None):
        self.wall, self.rc, self.stdout, self.stderr, self.maxrss_kib = wall, rc, stdout, stderr, maxrss_kib
        self.cpu = cpu  # user + system seconds
        # The whole machine's busy CPU seconds meanwhile: on the lab the servers' side (sshd,
        # dockerd, containers) shares the same cores as the command.
        self.machine_cpu = machine_cpu

    @property
    def peak_mib(self):
        return None if self.maxrss_kib is None else self.maxrss_kib / 1024


def timed(cmd, ok=(0,), env=None, label=None):
    """Runs cmd under /usr/bin/time -v; wall time measured here (monotonic), peak RSS from time."""
    with tempfile.NamedTemporaryFile("r", suffix=".time", dir=OUT, delete=False) as f:
        tfile = f.name
    busy0 = machine_busy_seconds()
    t0 = time.monotonic()
    r = subprocess.run(["/usr/bin/time", "-v", "-o", tfile] + cmd, capture_output=True, text=True, env=env)
    wall = time.monotonic() - t0
    machine_cpu = machine_busy_seconds() - busy0
    text = Path(tfile).read_text()
    os.unlink(tfile)
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    cpu = sum(float(x) for x in re.findall(r"(?:User|System) time \(seconds\): ([\d.]+)", text)) or None
    res = Timed(wall, r.returncode, r.stdout, r.stderr, int(m.group(1)) if m else None, cpu, machine_cpu)
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
# upgrade under load (both strategies), cold and converged up


def upgrade_strategies(rcfleet):
    """The strategies to measure: start-first and stop-first when `rcfleet upgrade --help` lists
    them, else the one upgrade rcfleet has (rolling, whose floor is stop-first's), run without
    --strategy. Returns [(name, flag or None)]."""
    text = sh([rcfleet, "upgrade", "--help"], check=False).stdout
    if "start-first" in text and "stop-first" in text:
        return [("start-first", True), ("stop-first", True)]
    return [("rolling", False)]


def floor_seconds(strategy, batches, drain, boot):
    # stop-first: each batch is drained, then replaced, then boots. start-first: the new release
    # boots beside the old instance and the old one drains after, so a batch waits for the longer.
    per_batch = max(drain, boot) if strategy == "start-first" else drain + boot
    return batches * per_batch


def background(cmd, stop_file):
    stop_file.unlink(missing_ok=True)
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)


def finish(proc, stop_file):
    stop_file.touch()
    try:
        out, _ = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()  # our own child, by pid
        out, _ = proc.communicate()
    return out


def upgrade_under_load(rcfleet, env, strategy, flag, release, tag):
    """One upgrade with a paced load through Traefik and Traefik's UP count sampled meanwhile."""
    inv = env["LAB_INVENTORY"]
    lb = env["LAB_ADDR_LB"]
    load_stop, load_out, cap_stop = OUT / f"load-{tag}.stop", OUT / f"load-{tag}.json", OUT / f"capacity-{tag}.stop"
    load_out.unlink(missing_ok=True)
    load = background([sys.executable, str(ROOT / "tests/bench/loadgen.py"),
                       "--url", f"http://{lb}/api/info", "--host", env["LAB_DOMAIN"],
                       "--rate", str(LOAD_RATE), "--stop-file", str(load_stop),
                       "--out", str(load_out), "--max-seconds", "900"], load_stop)
    # Traefik's API listens on the lb host's loopback only: the sampler runs in its namespaces.
    capacity = background([str(LAB), "exec", "--name", LAB_NAME, "lb", "--", "python3",
                           str(ROOT / "tests/bench/capacity.py"), "--interval", str(CAPACITY_INTERVAL),
                           "--stop-file", str(cap_stop), "--max-seconds", "900"], cap_stop)
    try:
        time.sleep(2)  # the load is steady and the sampler has a baseline before the upgrade starts
        cmd = [rcfleet, "-i", inv, "--json", "upgrade", "--release", release]
        up = timed(cmd + (["--strategy", strategy] if flag else []), label=f"upgrade {strategy}")
        time.sleep(2)
    finally:
        finish(load, load_stop)
        cap_text = finish(capacity, cap_stop)
    return up, json.loads(load_out.read_text()), json.loads(cap_text.strip().splitlines()[-1])


def bench_upgrade(rcfleet, runs, converged_per_run, strategies):
    per = {name: {"flag": flag, "runs": []} for name, flag in strategies}
    common = []
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
            wait_for_quiet()
            c = timed(base + ["up"], label="converged up")
            conv.append(c)
            log(f"  converged up {c.wall:.2f}s (cpu {c.cpu or 0:.2f}s, machine {c.machine_cpu:.2f} cpu-s), "
                f"peak {c.peak_mib:.1f} MiB")
        common.append({"cold_up_s": cold.wall, "cold_up_peak_mib": cold.peak_mib,
                       "converged_up_s": [c.wall for c in conv], "converged_up_peak_mib": [c.peak_mib for c in conv],
                       "converged_up_cpu_s": [c.cpu for c in conv], "converged_up_machine_cpu_s": [c.machine_cpu for c in conv],
                       "upgrade_peak_mib": []})

        # Both strategies on this one fleet, one release step each; which goes first alternates
        # from run to run so that neither always has the same step.
        order = strategies if run % 2 == 0 else list(reversed(strategies))
        current = FROM_RELEASE
        for (name, flag), release in zip(order, UPGRADE_STEPS[-len(order):]):
            wait_for_quiet()
            up, loadres, cap = upgrade_under_load(rcfleet, env, name, flag, release, f"{name}-{run}")
            outcome = json.loads(up.stdout)
            phases = {p["phase"]: p["seconds"] for p in outcome.get("phases", [])}
            batches = 1 + -(-(instances - 1) // batch)  # canary, then ceil((n-1)/batch)
            floor = floor_seconds(name, batches, drain, BOOT_SECONDS)
            prepull = phases.get("pre-pull", 0.0)
            overhead = (up.wall - floor - prepull) / instances
            r = {
                "from": current, "to": release, "upgrade_wall_s": up.wall, "upgrade_peak_mib": up.peak_mib,
                "instances": instances, "batches": batches, "drain_s": drain, "boot_s": BOOT_SECONDS,
                "floor_s": floor, "prepull_s": prepull, "backup_s": phases.get("backup", 0.0),
                "overhead_per_instance_s": overhead, "phases": outcome.get("phases"),
                "instance_seconds": {i["instance"]: i["seconds"] for i in outcome.get("instances", [])},
                "capacity": cap,
                "load": {k: loadres[k] for k in ("target_rate", "seconds", "sent", "ok", "failed", "rate", "ok_rate",
                                                   "latency_p50_ms", "latency_max_ms", "failures")},
            }
            common[-1]["upgrade_peak_mib"].append(up.peak_mib)
            log(f"  upgrade {name} {current}->{release}: {up.wall:.2f}s (floor {floor}s, pre-pull {prepull:.2f}s), "
                f"overhead/instance {overhead:.2f}s, peak {up.peak_mib:.1f} MiB; load {loadres['sent']} sent, "
                f"{loadres['failed']} failed; Traefik UP min {cap['min_up']} max {cap['max_up']} of {instances}")
            per[name]["runs"].append(r)
            current = release
        # The run logs, for profiling the overhead (copied: the lab's folder goes with it).
        logs = Path(inv).parent / ".rcfleet" / "logs"
        if logs.is_dir():
            dest = OUT / "logs" / f"upgrade-run{run + 1}"
            shutil.rmtree(dest, ignore_errors=True)
            shutil.copytree(logs, dest)
    for st in per.values():
        rs = st["runs"]
        st["summary"] = {
            "upgrade_wall_s": stats([r["upgrade_wall_s"] for r in rs]),
            "floor_s": stats([r["floor_s"] for r in rs]),
            "prepull_s": stats([r["prepull_s"] for r in rs]),
            "backup_s": stats([r["backup_s"] for r in rs]),
            "overhead_per_instance_s": stats([r["overhead_per_instance_s"] for r in rs]),
            "failed_requests": stats([r["load"]["failed"] for r in rs]),
            "requests_sent": stats([r["load"]["sent"] for r in rs]),
            "request_rate": stats([r["load"]["rate"] for r in rs]),
            "capacity_min_up": stats([r["capacity"]["min_up"] for r in rs]),
        }
    return {
        "strategies_ran": [name for name, _ in strategies],
        "strategies": per,
        "runs": common,
        "summary": {
            "cold_up_s": stats([c["cold_up_s"] for c in common]),
            "converged_up_s": stats([v for c in common for v in c["converged_up_s"]]),
            "peak_mib_up": stats([c["cold_up_peak_mib"] for c in common] + [v for c in common for v in c["converged_up_peak_mib"]]),
            "peak_mib_upgrade": stats([v for c in common for v in c["upgrade_peak_mib"]]),
        },
    }


# ---------------------------------------------------------------------------------------------
# fan-out


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


def subset_inventory(full_text, n):
    """The lab inventory with app hosts app1..appN only (the [[hosts]] tables of the others cut)."""
    parts = re.split(r"(?m)^(?=\[\[hosts\]\]|\[images\])", full_text)

    def keep(part):
        m = re.search(r'(?m)^name = "app(\d+)"', part) if part.startswith("[[hosts]]") else None
        return m is None or int(m.group(1)) <= n
    return "".join(p for p in parts if keep(p))


def lab_rss_mib():
    """Resident memory of the lab's own processes (sshd, dockerd, containerd, registry: each
    names the lab's run or state folder on its command line), summed. Not the machine's free
    memory, which the other work on it moves by more than the lab takes."""
    marks = (f"/rcfleet-lab/{LAB_NAME}/", f"/.lab/{LAB_NAME}/")
    kib = 0
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if any(m in cmdline for m in marks):
                m = re.search(r"VmRSS:\s+(\d+)", (proc / "status").read_text())
                kib += int(m.group(1)) if m else 0
        except (OSError, ValueError):
            continue  # not a process, or gone meanwhile
    return kib / 1024


def bench_fanout(rcfleet, sizes, runs, venv):
    """One lab with the largest size's app hosts (full hosts: `status` asks each host's Docker
    engine, which --light hosts do not run), grown size by size: for N app hosts the inventory
    lists app1..appN and `up` deploys the hosts added since the last size, so the hosts beyond
    N run sshd and an idle Docker engine only and no command touches them."""
    sizes = sorted(sizes)
    top = sizes[-1]
    log(f"fan-out: one lab of 1 db + 1 lb + {top} app hosts, grown through sizes {sizes}")
    t0 = time.monotonic()
    env = lab_up(top)
    results = {"lab_app_hosts": top, "lab_up_s": time.monotonic() - t0, "lab_memory_mib": lab_rss_mib(), "sizes": {}}
    inv = env["LAB_INVENTORY"]
    set_boot_seconds(inv, 0)
    full = Path(inv).read_text()
    for n in sizes:
        Path(inv).write_text(subset_inventory(full, n))
        hosts = ["db", "lb"] + [f"app{k}" for k in range(1, n + 1)]
        senv = dict(env, LAB_HOSTS=" ".join(hosts))
        up = timed([rcfleet, "-i", inv, "up"], label=f"up ({n} app hosts)")
        log(f"  {n} app hosts: up (deploying the added hosts) {up.wall:.1f}s")
        acmd, aenv = ansible_setup(senv, venv) if venv else (None, None)
        row = {"hosts": len(hosts), "up_s": up.wall, "status": [], "status_peak_mib": [], "status_cpu_s": [],
               "status_machine_cpu_s": [], "status_healthy": [], "ssh_loop": [], "ansible": []}
        row["status_quiet"] = []
        for rep in range(runs):
            # Each of the three is measured at rest (see wait_for_quiet), under the same conditions.
            waited, busy = wait_for_quiet()
            row["status_quiet"].append({"waited_s": waited, "machine_busy": busy})
            programs = cpu_by_program()
            s = timed([rcfleet, "-i", inv, "--json", "status"], ok=(0, 3), label="status")
            # Where the machine's CPU went meanwhile: the lab's servers share its cores.
            row.setdefault("status_cpu_by_program", []).append(cpu_used_since(programs))
            row["status"].append(s.wall)
            row["status_peak_mib"].append(s.peak_mib)
            row["status_cpu_s"].append(s.cpu)
            row["status_machine_cpu_s"].append(s.machine_cpu)
            try:
                row["status_healthy"].append(json.loads(s.stdout).get("healthy"))
            except json.JSONDecodeError:
                row["status_healthy"].append(None)
            # The same look again over connections already open (`status --watch`): no SSH
            # handshake; each look's own time, as status reports it (the first, which connects,
            # left out), median of five.
            wait_for_quiet()
            w = timed([rcfleet, "-i", inv, "--json", "status", "--watch", "0", "--count", "6"], ok=(0, 3), label="status --watch")
            looks = [json.loads(line)["observe_seconds"] for line in w.stdout.splitlines() if line.strip()]
            row.setdefault("status_kept_look", []).append(statistics.median(looks[1:]))
            wait_for_quiet()
            l = timed(ssh_loop_cmd(senv), label="ssh loop")
            row["ssh_loop"].append(l.wall)
            if acmd:
                try:
                    wait_for_quiet()
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
            log(f"  rep {rep + 1} (machine {busy:.0%} busy after {waited:.1f}s of waiting for it to settle): status {s.wall:.2f}s (cpu {s.cpu or 0:.2f}s, machine {s.machine_cpu:.2f} cpu-s "
                f"of {os.cpu_count() * s.wall:.2f}, {s.peak_mib:.1f} MiB)  "
                f"ssh loop {l.wall:.2f}s" + (f"  ansible {row['ansible'][-1]:.2f}s" if acmd else ""))
        row["summary"] = {k: stats(row[k]) for k in ("status", "ssh_loop", "ansible", "status_peak_mib", "status_kept_look")}
        # Ratios within this run: per repetition, then the median.
        row["ratio_ssh_loop_to_status"] = stats([l / s for l, s in zip(row["ssh_loop"], row["status"])])
        if row["ansible"] and len(row["ansible"]) == len(row["status"]):
            row["ratio_ansible_to_status"] = stats([a / s for a, s in zip(row["ansible"], row["status"])])
        results["sizes"][str(n)] = row
    Path(inv).write_text(full)
    results["ratios"] = {}
    one = results["sizes"].get("1")
    for big in ("16", "32"):
        other = results["sizes"].get(big)
        if one and other:
            results["ratios"][f"{big}/1"] = {
                tool: stats([b / a for a, b in zip(one[tool], other[tool])])
                for tool in ("status", "status_kept_look", "ssh_loop", "ansible")
                if one.get(tool) and len(one[tool]) == len(other.get(tool, []))
            }
    return results


# ---------------------------------------------------------------------------------------------
# plan at scale


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


def bench_plan(rcfleet, runs, out_runs):
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
    for _ in range(out_runs):
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


def revision():
    """The git short hash, with -dirty when tracked files differ from it (--rev: that revision)."""
    if os.environ.get("BENCH_REV"):
        return os.environ["BENCH_REV"]
    rev = sh(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], check=False).stdout.strip()
    dirty = sh(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"], check=False).stdout.strip()
    return rev + ("-dirty" if dirty else "")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", action="append", choices=["upgrade", "fanout", "plan"], help="run only these sections")
    ap.add_argument("--runs", type=int, default=3, help="runs of each long measurement (default 3)")
    ap.add_argument("--plan-runs", type=int, default=7)
    ap.add_argument("--converged-per-run", type=int, default=3)
    ap.add_argument("--sizes", default="1,4,16,32", help="app hosts for the fan-out (default 1,4,16,32)")
    ap.add_argument("--no-ansible", action="store_true")
    ap.add_argument("--rcfleet", required=True)
    ap.add_argument("--venv", default=str(OUT / "venv"))
    ap.add_argument("--out", default=str(OUT / "results.json"))
    a = ap.parse_args()
    sections = a.only or ["upgrade", "fanout", "plan"]
    OUT.mkdir(parents=True, exist_ok=True)
    res = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "command": "tests/bench/run " + shlex.join(sys.argv[3:] if sys.argv[1:2] == ["--rcfleet"] else sys.argv[1:]),
           "machine": machine(), "rcfleet": a.rcfleet, "revision": revision(),
           "goals": {k: f"{op} {v}" for k, (op, v) in GOALS.items()}, "section_seconds": {}}
    started = time.monotonic()

    def section(name, fn, *args):
        t0 = time.monotonic()
        res[name] = fn(*args)
        res["section_seconds"][name] = round(time.monotonic() - t0, 1)
        log(f"{name}: {res['section_seconds'][name]}s")
        # Written after each section too, so that a later failure keeps what was measured.
        Path(a.out).write_text(json.dumps(res, indent=1) + "\n")
    try:
        if "plan" in sections:
            section("plan", bench_plan, a.rcfleet, a.plan_runs, a.runs)  # --out writes 1600 files: --runs times
        if "upgrade" in sections:
            section("upgrade", bench_upgrade, a.rcfleet, a.runs, a.converged_per_run, upgrade_strategies(a.rcfleet))
        if "fanout" in sections:
            venv = None if a.no_ansible else Path(a.venv)
            sizes = [int(x) for x in a.sizes.split(",")]
            section("fanout", bench_fanout, a.rcfleet, sizes, a.runs, venv)
    finally:
        if "upgrade" in sections or "fanout" in sections:
            lab_down()
    res["seconds"] = round(time.monotonic() - started, 1)
    res["machine"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    res["table"] = render_table(res)
    Path(a.out).write_text(json.dumps(res, indent=1) + "\n")
    print(res["table"])
    print(f"\nmachine: {res['machine']['cpu']}, {res['machine']['cores']} cores, {res['machine']['memory']}; "
          f"{res['date']}; revision {res['revision']}; {res['seconds']}s {res['section_seconds']}\nJSON: {a.out}\n"
          "README: tests/bench/readme_table.py puts this table in README.md")


if __name__ == "__main__":
    main()
