#!/usr/bin/python3
# SPDX-License-Identifier: MIT
#
# The measuring half of tests/bench/bench.sh: timing loops, the UDP flood and its timestamping
# receiver, /proc sampling, statistics and the report. bench.sh builds the lab and calls the
# sub-commands below, each inside the namespace it belongs to; every sub-command writes its
# results as JSON into the results directory, and `report` turns them into the table.
#
# Not a test: nothing here passes or fails, it measures. Nothing sends a packet outside the
# bench's own namespaces, and nft only ever runs inside the lab's gateway namespace (checked).

import argparse
import array
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

# ------------------------------------------------------------------------------------------------
# Helpers


def percentile(values, q):
    """Linear interpolation between closest ranks (numpy's default), q in [0, 100]."""
    v = sorted(values)
    if not v:
        return None
    if len(v) == 1:
        return v[0]
    pos = (len(v) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (pos - lo)


def summary(values):
    return {
        "n": len(values),
        "median": percentile(values, 50),
        "p10": percentile(values, 10),
        "p90": percentile(values, 90),
        "min": min(values) if values else None,
        "max": max(values) if values else None,
    }


def write_json(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1)
    os.replace(tmp, path)


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return None


def require_lab_netns(name):
    """Refuse to run nft anywhere but in the lab namespace NAME (never on the host's ruleset)."""
    me = os.stat("/proc/self/ns/net")
    try:
        lab = os.stat(os.path.join("/run/netns", name))
    except OSError as e:
        sys.exit("bench.py: no lab namespace %s: %s" % (name, e))
    if (me.st_dev, me.st_ino) != (lab.st_dev, lab.st_ino):
        sys.exit("bench.py: refusing to run nft outside the lab namespace %s" % name)


class Ctl:
    def __init__(self, ctl, sock):
        self.base = [ctl, "--socket", sock]

    def run(self, *args, check=True):
        p = subprocess.run(self.base + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, timeout=120)
        if check and p.returncode != 0:
            raise RuntimeError("killswitchctl %s failed (exit %d): %s%s" %
                               (" ".join(args), p.returncode, p.stdout, p.stderr))
        return p

    def timed(self, *args):
        """Wall time of one killswitchctl invocation, start of exec to exit, in seconds."""
        t0 = time.perf_counter()
        p = subprocess.run(self.base + list(args), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           text=True, timeout=120)
        t1 = time.perf_counter()
        if p.returncode != 0:
            raise RuntimeError("killswitchctl %s failed (exit %d): %s" %
                               (" ".join(args), p.returncode, p.stderr))
        return t1 - t0

    def status(self):
        d = json.loads(self.run("--json=short", "status").stdout)
        return d.get("parameters", d) if isinstance(d, dict) else d


# ------------------------------------------------------------------------------------------------
# Policies


def gen_policy(args):
    """A policy with N distinct, non-adjacent /32s (gateway "bulk"), then the lab's allowlisted peer.

    Addresses are 100.64.0.1, .3, .5, ... (every other address, so no two merge into a range):
    100,000 of them fit in 100.64.0.0/10. No packet is ever sent to them. The peer comes last, so
    that its packets are first looked up (and missed) in the big set: the worst case per packet.
    """
    n = args.entries
    base = (100 << 24) | (64 << 16)
    out = ["[Policy]", "Description=bench: %d allowlisted addresses plus the lab peer" % n, "",
           "[Uplinks]", "Interface=wan0 wan1", ""]
    if n > 0:
        out.append("[Gateway bulk]")
        line = []
        for i in range(n):
            a = base + 2 * i + 1
            line.append(socket.inet_ntoa(struct.pack("!I", a)))
            if len(line) == 32:
                out.append("Address=" + " ".join(line))
                line = []
        if line:
            out.append("Address=" + " ".join(line))
        out += ["Ports=tcp:443 udp:5060", ""]
    out += ["[Gateway peer]", "Address=%s" % args.peer, "Ports=tcp:443 udp:5060"]
    if args.service:
        # Policy v2: a service on the lan host, after all gateways (the worst case per packet).
        out += ["", "[Service bench]", "Address=%s" % args.service, "Ports=tcp:443"]
    with open(args.out, "w") as f:
        f.write("\n".join(out) + "\n")


# ------------------------------------------------------------------------------------------------
# 1 and 2: killswitchctl isolate vs nft -f, and the agent's own apply time


def switch_timing(args):
    require_lab_netns(args.netns)
    ctl = Ctl(args.ctl, args.socket)
    results = {"reps": args.reps, "sizes": []}
    ctl.run("restore", "--reason", "bench")
    for size in args.sizes:
        pol = "bench%d" % size
        ruleset = ctl.run("show", pol).stdout
        if "table inet killswitch" not in ruleset:
            raise RuntimeError("killswitchctl show %s printed no 'table inet killswitch'" % pol)
        nft_text = ruleset.replace("table inet killswitch", "table inet nftbench", 1)
        # The equivalent ruleset, in force: drop table flags such as dormant/owner/persist should
        # `show` ever print them (set flags, indented deeper, stay).
        nft_text = re.sub(r"(?m)^\tflags [^\n]*(dormant|owner|persist)[^\n]*\n", "", nft_text)
        # nft 1.0.6 cannot read back `ct original proto-dst`/`proto-src` inside a concatenation
        # (killswitch.policy(5), "The ruleset"); the agent never goes through text. Leave those
        # few rules (ICMP errors, connection-matched entries) out of nft's side: that only
        # favours nft.
        nft_text = re.sub(r"(?m)^[^\n]*\. ct original proto-(dst|src) @[^\n]*\n", "", nft_text)
        nft_file = os.path.join(args.dir, "nftbench-%d.nft" % size)
        with open(nft_file, "w") as f:
            f.write(nft_text)
        elements = nft_text.count(" . tcp . ") + nft_text.count(" . udp . ")

        def nft(*a, timed=False):
            t0 = time.perf_counter()
            p = subprocess.run(["nft"] + list(a), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True, timeout=300)
            t1 = time.perf_counter()
            if p.returncode != 0:
                raise RuntimeError("nft %s failed: %s" % (" ".join(a), p.stderr))
            return t1 - t0

        subprocess.run(["nft", "delete", "table", "inet", "nftbench"], stderr=subprocess.DEVNULL)
        # One untimed warm-up of each (page cache, first-use allocations), then alternate.
        ctl.run("isolate", pol, "--reason", "bench warm-up")
        ctl.run("restore", "--reason", "bench warm-up")
        nft("-f", nft_file)
        nft("delete", "table", "inet", "nftbench")

        ks, ks_apply, ks_restore, ks_restore_apply, nf = [], [], [], [], []
        for i in range(args.reps):
            ks.append(ctl.timed("isolate", pol, "--reason", "bench"))
            st = ctl.status()
            if st.get("state") != "isolated" or st.get("policy") != pol:
                raise RuntimeError("after isolate %s the agent reports %s/%s" %
                                   (pol, st.get("state"), st.get("policy")))
            if st.get("apply_usec") is not None:
                ks_apply.append(st["apply_usec"])
            ks_restore.append(ctl.timed("restore", "--reason", "bench"))
            st = ctl.status()
            if st.get("apply_usec") is not None:
                ks_restore_apply.append(st["apply_usec"])
            nf.append(nft("-f", nft_file))
            nft("delete", "table", "inet", "nftbench")
        r = {
            "entries": size,
            "elements": elements,
            "ruleset_bytes": len(nft_text),
            "isolate_ms": summary([x * 1e3 for x in ks]),
            "restore_ms": summary([x * 1e3 for x in ks_restore]),
            "nft_ms": summary([x * 1e3 for x in nf]),
            "apply_usec": summary(ks_apply),
            "restore_apply_usec": summary(ks_restore_apply),
        }
        r["ratio"] = r["nft_ms"]["median"] / r["isolate_ms"]["median"]
        results["sizes"].append(r)
        print("  %7d entries: isolate %.2f ms, nft -f %.2f ms, ratio %.1fx, apply %s us" %
              (size, r["isolate_ms"]["median"], r["nft_ms"]["median"], r["ratio"],
               r["apply_usec"]["median"]), flush=True)
    write_json(args.out, results)


# ------------------------------------------------------------------------------------------------
# 6: isolate latency while the agent is busy with something else


def varlink_call(sock, method, params=None):
    """One Varlink call on a connected socket; returns the reply's length in bytes."""
    sock.sendall(json.dumps({"method": method, "parameters": params or {}}).encode() + b"\0")
    buf = b""
    while not buf.endswith(b"\0"):
        chunk = sock.recv(1 << 16)
        if not chunk:
            raise ConnectionError("the agent closed the connection")
        buf += chunk
    return len(buf)


def load_clients(args, stop, counter):
    """args.clients connections, each calling Status and History in turn as fast as it can."""
    def client(i):
        while not stop.is_set():
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                    s.connect(args.socket)
                    while not stop.is_set():
                        varlink_call(s, "io.killswitch.Status")
                        varlink_call(s, "io.killswitch.History", {"n": 50})
                        counter[i] += 2
            except OSError:
                time.sleep(0.01)
    return [threading.Thread(target=client, args=(i,), daemon=True) for i in range(args.clients)]


def policy_versions(path, n=2):
    """n versions of the policy file at path, differing in Description= only, written and synced once
    beside it (same file system), so that each reload round can swap one in by a rename."""
    with open(path) as f:
        text = f.read()
    folder = os.path.join(os.path.dirname(os.path.dirname(path)), "bench-versions")
    os.makedirs(folder, exist_ok=True)
    versions = []
    for k in range(n):
        v = os.path.join(folder, "%s.%d" % (os.path.basename(path), k))
        with open(v, "w") as f:
            f.write(re.sub(r"(?m)^Description=.*$", "Description=bench: staging version %d" % k, text, count=1))
            f.flush()
            os.fsync(f.fileno())
        versions.append(v)
    return versions


def swap_in(version, path):
    """Replace path by a hard link of version: a rename, no file data written."""
    tmp = version + ".next"
    if os.path.exists(tmp):
        os.unlink(tmp)
    os.link(version, tmp)
    os.replace(tmp, path)


def load_reloads(args, stop, counter):
    """`killswitchctl reload` again and again; with --touch, a changed policy file every time: by default
    one of two pre-written versions renamed into place (the agent re-stages, nothing is written to disk);
    with --rewrite, the whole file written anew each round, as an editor saving it would."""
    versions = policy_versions(args.touch) if args.touch and not args.rewrite else []

    def loop():
        n = 0
        while not stop.is_set():
            if versions:
                swap_in(versions[n % len(versions)], args.touch)
            elif args.touch:
                with open(args.touch) as f:
                    text = f.read()
                text = re.sub(r"(?m)^Description=.*$", "Description=bench: staging round %d" % n, text, count=1)
                with open(args.touch, "w") as f:
                    f.write(text)
            subprocess.run([args.ctl, "--socket", args.socket, "reload"], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=120)
            n += 1
            counter[0] += 1
    return [threading.Thread(target=loop, daemon=True)]


def latency(args):
    """Wall time of `killswitchctl isolate P` (untimed restore in between) under one kind of load."""
    ctl = Ctl(args.ctl, args.socket)
    ctl.run("restore", "--reason", "bench")
    stop = threading.Event()
    counter = [0] * max(args.clients, 1)
    threads = []
    if args.load == "clients":
        threads = load_clients(args, stop, counter)
    elif args.load in ("dns", "stage"):
        threads = load_reloads(args, stop, counter)
    for t in threads:
        t.start()
    time.sleep(args.warmup if threads else 0)
    xs = []
    t_start = time.perf_counter()
    try:
        for i in range(args.reps):
            xs.append(ctl.timed("isolate", args.policy, "--reason", "bench latency") * 1e3)
            ctl.run("restore", "--reason", "bench latency")
            time.sleep(args.pause)
    finally:
        elapsed = time.perf_counter() - t_start
        stop.set()
        for t in threads:
            t.join(timeout=130)
    key = args.label or args.load
    r = {"load": args.load, "reps": args.reps, "isolate_ms": summary(xs), "p99": percentile(xs, 99),
         "background_ops": sum(counter), "seconds": elapsed}
    print("  %-8s isolate p50 %.1f ms, p99 %.1f ms, max %.1f ms (%d runs; %d background operations in %.0f s)" %
          (key, r["isolate_ms"]["median"], r["p99"], r["isolate_ms"]["max"], len(xs), r["background_ops"],
           elapsed), flush=True)
    res = read_json(args.out) or {}
    res[key] = r
    write_json(args.out, res)


# ------------------------------------------------------------------------------------------------
# 3: packets of a cut flow that pass after isolate returns

SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
SO_RXQ_OVFL = 40
SO_RCVBUFFORCE = 33


def udp_recv(args):
    """Receive the flood; keep each packet's kernel receive time (SO_TIMESTAMPNS, CLOCK_REALTIME).

    Runs until SIGTERM, then writes the timestamps (float64 seconds) to args.out and the
    kernel's count of datagrams dropped for a full receive buffer (SO_RXQ_OVFL) to args.out.json.
    """
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 256 << 20)
    except OSError:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 20)
    s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    s.setsockopt(socket.SOL_SOCKET, SO_RXQ_OVFL, 1)
    s.bind((args.bind, args.port))
    stamps = array.array("d")
    state = {"stop": False, "dropped": 0}

    def stop(*_):
        state["stop"] = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    s.settimeout(0.2)
    open(args.out + ".ready", "w").close()
    cmsg_space = socket.CMSG_SPACE(16) + socket.CMSG_SPACE(4)
    while not state["stop"]:
        try:
            _, anc, _, _ = s.recvmsg(64, cmsg_space)
        except socket.timeout:
            continue
        except InterruptedError:
            continue
        ts = None
        for level, typ, data in anc:
            if level == socket.SOL_SOCKET and typ == SO_TIMESTAMPNS:
                sec, nsec = struct.unpack("qq", data[:16])
                ts = sec + nsec * 1e-9
            elif level == socket.SOL_SOCKET and typ == SO_RXQ_OVFL:
                state["dropped"] = struct.unpack("I", data[:4])[0]
        stamps.append(ts if ts is not None else time.time())
    with open(args.out, "wb") as f:
        stamps.tofile(f)
    write_json(args.out + ".json", {"received": len(stamps), "rcvbuf_dropped": state["dropped"]})


def udp_send(args):
    """A paced UDP flood (args.pps datagrams per second) until SIGTERM or args.duration."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect((args.dst, args.port))
    state = {"stop": False}
    signal.signal(signal.SIGTERM, lambda *_: state.update(stop=True))
    payload = b"killswitch-bench-flood".ljust(64, b".")
    sent = 0
    t0 = time.monotonic()
    end = t0 + args.duration
    batch = 16
    while not state["stop"]:
        for _ in range(batch):
            try:
                s.send(payload)
                sent += 1
            except OSError:  # ICMP errors reported back on the connected socket, ENOBUFS
                pass
        now = time.monotonic()
        if now >= end:
            break
        ahead = sent / args.pps - (now - t0)
        if ahead > 0:
            time.sleep(ahead)
    dt = time.monotonic() - t0
    write_json(args.out, {"sent": sent, "seconds": dt, "pps": sent / dt if dt else 0})


def leak_switch(args):
    """Isolate with the flood running; record when each isolate was called and returned."""
    ctl = Ctl(args.ctl, args.socket)
    ctl.run("restore", "--reason", "bench")
    reps = []
    for i in range(args.reps):
        time.sleep(args.settle)  # the flood flows freely
        t_call = time.time()
        ctl.run("isolate", args.policy, "--reason", "bench leak test")
        t_ret = time.time()  # right after isolate returned
        time.sleep(args.hold)
        t_restore = time.time()
        ctl.run("restore", "--reason", "bench leak test")
        reps.append({"call": t_call, "ret": t_ret, "restore": t_restore})
    write_json(args.out, {"policy": args.policy, "settle": args.settle, "hold": args.hold,
                          "reps": reps})


def leak_analyze(args):
    sw = read_json(args.switch)
    stamps = array.array("d")
    with open(args.stamps, "rb") as f:
        stamps.frombytes(f.read())
    st = sorted(stamps)
    import bisect
    rows = []
    for r in sw["reps"]:
        before = bisect.bisect_left(st, r["call"]) - bisect.bisect_left(st, r["call"] - args.window)
        during = bisect.bisect_right(st, r["ret"]) - bisect.bisect_left(st, r["call"])
        after = bisect.bisect_right(st, r["restore"]) - bisect.bisect_right(st, r["ret"])
        i = bisect.bisect_right(st, r["ret"]) - 1
        last_before_ret = (r["ret"] - st[i]) * 1e3 if i >= 0 else None
        rows.append({"before_window": before, "during_call": during, "after_return": after,
                     "margin_ms": last_before_ret, "call_ms": (r["ret"] - r["call"]) * 1e3})
    recv = read_json(args.stamps + ".json") or {}
    send = read_json(args.sender) or {}
    out = {
        "policy": sw["policy"],
        "reps": len(rows),
        "hold_s": sw["hold"],
        "window_s": args.window,
        "pps": send.get("pps"),
        "sent": send.get("sent"),
        "received": recv.get("received"),
        "rcvbuf_dropped": recv.get("rcvbuf_dropped"),
        "after_max": max(r["after_return"] for r in rows) if rows else None,
        "after_total": sum(r["after_return"] for r in rows),
        "during_median": percentile([r["during_call"] for r in rows], 50),
        "before_min": min(r["before_window"] for r in rows) if rows else None,
        "margin_ms": summary([r["margin_ms"] for r in rows if r["margin_ms"] is not None]),
        "rows": rows,
    }
    write_json(args.out, out)


# ------------------------------------------------------------------------------------------------
# 5: agent memory and wake-ups


def _proc_status(pid):
    d = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            d[k] = v.strip()
    return d


def _ctx_switches(pid):
    vol = invol = 0
    for tid in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
            for line in f:
                if line.startswith("voluntary_ctxt_switches:"):
                    vol += int(line.split()[1])
                elif line.startswith("nonvoluntary_ctxt_switches:"):
                    invol += int(line.split()[1])
    return vol, invol


def settle(args):
    """Wait until the agent has made no context switch for args.quiet seconds (at most args.max)."""
    t0 = time.monotonic()
    prev = sum(_ctx_switches(args.pid))
    quiet_since = time.monotonic()
    while time.monotonic() - t0 < args.max:
        time.sleep(0.25)
        cur = sum(_ctx_switches(args.pid))
        if cur != prev:
            prev, quiet_since = cur, time.monotonic()
        elif time.monotonic() - quiet_since >= args.quiet:
            return
    print("  (the agent was still busy after %g s)" % args.max)


def proc_sample(args):
    pid = args.pid
    # Idle means idle: first wait until the agent has finished what the last command started
    # (no context switch for 2 s, for at most 45 s), and report how long that took.
    t0 = time.monotonic()
    settle(argparse.Namespace(pid=pid, quiet=2, max=45))
    busy = max(0.0, time.monotonic() - t0 - 2)
    v0, i0 = _ctx_switches(pid)
    time.sleep(args.seconds)
    v1, i1 = _ctx_switches(pid)
    st = _proc_status(pid)
    rss_kib = int(st["VmRSS"].split()[0])
    hwm_kib = int(st["VmHWM"].split()[0])
    threads = int(st["Threads"])
    res = read_json(args.out) or {}
    res[args.label] = {"rss_kib": rss_kib, "hwm_kib": hwm_kib, "threads": threads,
                       "seconds": args.seconds, "voluntary": v1 - v0, "involuntary": i1 - i0,
                       "settle_s": busy,
                       "wakeups": (v1 - v0) + (i1 - i0)}
    write_json(args.out, res)
    print("  %s: RSS %.1f MiB, %d wake-ups in %g s (busy for %.0f s before)" % (
        args.label, rss_kib / 1024.0, (v1 - v0) + (i1 - i0), args.seconds, busy))


# ------------------------------------------------------------------------------------------------
# 4: throughput


def iperf_add(args):
    with open(args.json) as f:
        d = json.load(f)
    if "error" in d:
        raise SystemExit("iperf3: %s" % d["error"])
    bps = d["end"]["sum_received"]["bits_per_second"]
    retr = d["end"].get("sum_sent", {}).get("retransmits")
    res = read_json(args.out) or {}
    res.setdefault(args.label, []).append({"bps": bps, "retransmits": retr})
    write_json(args.out, res)
    print("  %-9s %.2f Gbit/s" % (args.label, bps / 1e9), flush=True)


def _schedstat_ns(pid):
    """CPU time of every thread of pid, in ns (/proc/PID/task/*/schedstat, first field). Softirq
    work done while a thread is current counts as its time (this kernel has no separate IRQ time
    accounting); time stolen by the hypervisor does not (paravirt steal time)."""
    total = 0
    try:
        tids = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return 0
    for tid in tids:
        try:
            with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return total


def _ksoftirqd(cpu):
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open("/proc/%s/comm" % pid) as f:
                    if f.read().strip() == "ksoftirqd/%d" % cpu:
                        return int(pid)
            except OSError:
                pass
    return None


def iperf_cost(args):
    """Run one iperf3 client (the command after --, its JSON on stdout into args.json) and charge
    the CPU time of the whole path to the bytes it moved: the client (wait4's rusage: user + system,
    including the softirq work done in its context, i.e. the gateway's forwarding and its hooks),
    the server (its threads' schedstat before and after) and ksoftirqd/CPU (softirq work deferred to
    it). Client, server and the gateway's forwarding are pinned to one CPU, so this is the CPU time
    the path costs per byte: unlike Gbit/s it does not drop when other work takes the CPU away, only
    when it pollutes the caches. With --perf FILE, `perf record -e cpu-clock -g -C CPU` runs
    alongside (the pids are saved, to filter the profile by)."""
    if args.cmd[:1] == ["--"]:
        args.cmd = args.cmd[1:]
    soft = _ksoftirqd(args.cpu)
    s0 = _schedstat_ns(args.server_pid)
    k0 = _schedstat_ns(soft) if soft else 0
    perf = None
    if args.perf:
        perf = subprocess.Popen(["perf", "record", "-q", "-e", "cpu-clock", "-F", "2999", "-g",
                                 "-C", str(args.cpu), "-o", args.perf],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
    t0 = time.monotonic()
    with open(args.json, "w") as out:
        child = subprocess.Popen(args.cmd, stdout=out, stderr=subprocess.STDOUT)
        _, status, ru = os.wait4(child.pid, 0)
    wall = time.monotonic() - t0
    s1 = _schedstat_ns(args.server_pid)
    k1 = _schedstat_ns(soft) if soft else 0
    if perf:
        perf.send_signal(signal.SIGINT)
        perf.wait()
        with open(args.perf + ".pids", "w") as f:
            f.write("%d %d %d\n" % (child.pid, args.server_pid, soft or 0))
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit("iperf3 failed: see %s" % args.json)
    with open(args.json) as f:
        d = json.load(f)
    if "error" in d:
        raise SystemExit("iperf3: %s" % d["error"])
    nbytes = d["end"]["sum_received"]["bytes"]
    bps = d["end"]["sum_received"]["bits_per_second"]
    client_ns = int((ru.ru_utime + ru.ru_stime) * 1e9)
    r = {"bytes": nbytes, "bps": bps, "wall_s": wall, "client_ns": client_ns,
         "server_ns": s1 - s0, "softirqd_ns": k1 - k0,
         "cpu_ns": client_ns + (s1 - s0) + (k1 - k0),
         "load": float(open("/proc/loadavg").read().split()[0])}
    r["ns_per_kb"] = r["cpu_ns"] / (nbytes / 1000.0)
    res = read_json(args.out) or {}
    res.setdefault(args.label, []).append(r)
    write_json(args.out, res)
    print("  %-13s %6.1f ns/kB of CPU (client %.2f s, server %.2f s, ksoftirqd %.2f s), %5.2f Gbit/s, "
          "load %.1f" % (args.label, r["ns_per_kb"], client_ns / 1e9, (s1 - s0) / 1e9, (k1 - k0) / 1e9,
                         bps / 1e9, r["load"]), flush=True)


def cost_report(args):
    """The per-byte CPU cost of each state: median of the rounds, and against its baseline."""
    res = read_json(args.json) or {}
    def med(label):
        xs = [x["ns_per_kb"] for x in res.get(label, [])]
        return (percentile(xs, 50), min(xs), max(xs), len(xs)) if xs else None
    names = [("none", "no table", None), ("none_ct", "no table, conntrack on", "none"),
             ("normal", "normal (agent running, policies staged)", "none_ct"),
             ("isolated", "isolated, lan → peer (10,000-entry gateway)", "none_ct"),
             ("svc_none", "no table, internet → service", None),
             ("svc_none_ct", "no table, conntrack on, internet → service", "svc_none"),
             ("svc_normal", "normal, internet → service", "svc_none_ct"),
             ("svc_isolated", "isolated, internet → `[Service]`", "svc_none_ct"),
             ("isolated_b", "isolated, lan → peer, build B", "none_ct"),
             ("svc_isolated_b", "isolated, internet → `[Service]`, build B", "svc_none_ct")]
    loads = [x["load"] for v in res.values() for x in v]
    print("CPU time per kB moved (client + server + ksoftirqd on CPU 0), median (min–max) of the "
          "rounds; load average %.1f–%.1f during the runs." % (min(loads or [0]), max(loads or [0])))
    print()
    print("| state | ns/kB median (min–max) | runs | vs baseline | throughput, % of baseline (1/cost) | Gbit/s median |")
    print("|---|---:|---:|---|---:|---:|")
    for key, label, base in names:
        m = med(key)
        if not m:
            continue
        gb = percentile([x["bps"] for x in res[key]], 50) / 1e9
        rel = ""
        pct = ""
        b = med(base) if base else None
        if b:
            rel = "+%.1f %% of %s" % (100.0 * (m[0] - b[0]) / b[0], base) if m[0] >= b[0] else \
                  "%.1f %% of %s" % (100.0 * (m[0] - b[0]) / b[0], base)
            pct = "%.1f %%" % (100.0 * b[0] / m[0])
        print("| %s | %.1f (%.1f–%.1f) | %d | %s | %s | %.2f |" % (label, m[0], m[1], m[2], m[3], rel, pct, gb))


def _perf_samples(path):
    """(pid, [frames, innermost first]) of each sample of a `perf record -g` file."""
    out = subprocess.run(["perf", "script", "-i", path, "-F", "pid,ip,sym"], capture_output=True,
                         text=True).stdout
    samples, cur = [], None
    for line in out.splitlines():
        if not line.strip():
            if cur:
                samples.append(cur)
            cur = None
        elif cur is None:
            cur = (int(line.split()[0]), [])
        else:
            parts = line.split()
            if len(parts) >= 2:
                cur[1].append(parts[1])
    if cur:
        samples.append(cur)
    return samples


# What the profile report counts, by function on the stack: all netfilter hooks (nf_hook_slow,
# which every hook goes through), the nftables chains (ours while isolated; the conntrack-only
# table has no base chain), connection tracking (its hooks and the confirm at the end).
PROFILE_GROUPS = [("hooks", ("nf_hook_slow",)), ("chains", ("nft_do_chain",)),
                  ("lookups", ("nft_lookup_eval",)),
                  ("conntrack", ("nf_conntrack_in", "ipv4_confirm", "ipv6_confirm", "nf_confirm",
                                 "__nf_conntrack_confirm"))]


def profile_report(args):
    """Per state, the share of the path's CPU samples (client, server, ksoftirqd: the pids that
    iperf-cost saved) spent under each group of PROFILE_GROUPS, median of the rounds, and that
    share of the state's median ns/kB (cost.json): the cost of the chains per byte, which other
    load changes even less than the total."""
    cost = read_json(args.cost) or {}
    shares = {}
    for name in sorted(os.listdir(args.dir)):
        if not name.endswith(".data"):
            continue
        label = name[:-len(".data")].rsplit("-", 1)[0]
        with open(os.path.join(args.dir, name + ".pids")) as f:
            pids = set(int(x) for x in f.read().split() if x != "0")
        ours = [st for pid, st in _perf_samples(os.path.join(args.dir, name)) if pid in pids]
        if not ours:
            continue
        row = {}
        for g, funcs in PROFILE_GROUPS:
            hit = sum(1 for st in ours if any(fr in funcs for fr in st))
            row[g] = 100.0 * hit / len(ours)
        row["samples"] = len(ours)
        shares.setdefault(label, []).append(row)
    print("Share of the path's CPU samples (perf record -e cpu-clock -g on CPU 0, the iperf3 client,")
    print("server and ksoftirqd/0 only), median of the rounds; ns/kB = that share of the state's")
    print("median CPU per kB.")
    print()
    print("| state | samples | %s |" % " | ".join("%s %%, ns/kB" % g for g, _ in PROFILE_GROUPS))
    print("|---|---:|%s" % ("---:|" * len(PROFILE_GROUPS)))
    for label in ["none", "none_ct", "normal", "isolated", "isolated_b", "svc_none", "svc_none_ct",
                  "svc_normal", "svc_isolated", "svc_isolated_b"]:
        rows = shares.get(label)
        if not rows:
            continue
        c = [x["ns_per_kb"] for x in cost.get(label, [])]
        nskb = percentile(c, 50) if c else None
        cells = []
        for g, _ in PROFILE_GROUPS:
            sh = percentile([r[g] for r in rows], 50)
            cells.append("%.2f %%, %s" % (sh, "%.1f" % (sh * nskb / 100.0) if nskb else "n/a"))
        print("| %s | %d | %s |" % (label, sum(r["samples"] for r in rows), " | ".join(cells)))


def put(args):
    res = read_json(args.out) or {}
    if args.add:
        res[args.key] = res.get(args.key, 0) + float(args.value)
    else:
        res[args.key] = float(args.value)
    write_json(args.out, res)


# ------------------------------------------------------------------------------------------------
# Report


def fmt_ms(s):
    if not s or s["median"] is None:
        return "n/a"
    return "%s (%s–%s)" % (num(s["median"]), num(s["p10"]), num(s["p90"]))


def num(x):
    if x is None:
        return "n/a"
    if x >= 100:
        return "%.0f" % x
    if x >= 10:
        return "%.1f" % x
    return "%.2f" % x


def throughput_rows(L, goals, thr, names, base, ct, base_name):
    """One table row per state: its median against the baseline without a table, and against the
    same baseline with connection tracking on (ct, None if not measured). A goal is judged against
    the baseline with conntrack when there is one: killswitch needs conntrack, see performance.md."""
    for key, label, goal in names:
        xs = [x["bps"] for x in thr.get(key, [])]
        if not xs:
            continue
        med = percentile(xs, 50)
        pct = 100.0 * med / base
        pct_ct = 100.0 * med / ct if ct else None
        L.append("| %s | %.2f (%.2f–%.2f) | %.1f %% | %s | %s |" % (
            label, med / 1e9, min(xs) / 1e9, max(xs) / 1e9, pct,
            "%.1f %%" % pct_ct if pct_ct is not None else "—", "≥ %g %%" % goal if goal else ""))
        if goal:
            goals.append(("throughput %s ≥ %g %% of %s" % (key, goal, base_name), "%.1f %%" % pct, pct >= goal))
            if pct_ct is not None:
                goals.append(("throughput %s ≥ %g %% of %s with conntrack on" % (key, goal, base_name),
                              "%.1f %%" % pct_ct, pct_ct >= goal))


def report(args):
    d = args.dir
    meta = read_json(os.path.join(d, "meta.json")) or {}
    sw = read_json(os.path.join(d, "switch.json"))
    leak = read_json(os.path.join(d, "leak.json"))
    thr = read_json(os.path.join(d, "throughput.json"))
    procs = read_json(os.path.join(d, "proc.json"))
    goals = []
    L = []
    L.append("# killswitch benchmark")
    L.append("")
    extra = read_json(os.path.join(d, "extra.json")) or {}
    L.append("%s run, %s. Machine: %s; %s CPUs; %s memory; kernel %s; nft %s. Load average "
             "(1 min) %s at the start, %s at the end (anything above 0 is other work sharing the "
             "CPUs and widens the spread)." % (
                 meta.get("mode", "?"), meta.get("date", "?"), meta.get("cpu", "?"), meta.get("nproc", "?"),
                 meta.get("mem", "?"), meta.get("kernel", "?"), meta.get("nft", "?"),
                 meta.get("load", "?"), extra.get("load_end", "?")))
    L.append("")

    L.append("## 1–2. Isolate: `killswitchctl isolate` vs `nft -f` of the same ruleset")
    L.append("")
    if sw:
        L.append("Wall time of the whole process, start to exit, median (p10–p90) of %d alternating runs "
                 "per size; agent apply = `apply_usec` from `status --json` after each isolate." % sw["reps"])
        L.append("")
        L.append("| allowlist | set elements | killswitchctl isolate, ms | nft -f, ms | ratio nft/ks "
                 "| agent apply, µs median / p90 | killswitchctl restore, ms |")
        L.append("|---:|---:|---:|---:|---:|---:|---:|")
        for r in sw["sizes"]:
            a = r["apply_usec"]
            L.append("| %s | %s | %s | %s | **%.1fx** | %s / %s | %s |" % (
                "{:,}".format(r["entries"]), "{:,}".format(r["elements"]), fmt_ms(r["isolate_ms"]),
                fmt_ms(r["nft_ms"]), r["ratio"], num(a["median"]), num(a["p90"]),
                fmt_ms(r["restore_ms"])))
            if r["entries"] == 10000:
                goals.append(("isolate ≥ 30x faster than nft -f at 10,000 entries (issue 15)",
                              "%.1fx" % r["ratio"], r["ratio"] >= 30))
    else:
        L.append("(not measured)")
    L.append("")

    L.append("## 3. Packets of a cut flow that pass after `isolate` returns")
    L.append("")
    if leak:
        L.append("A UDP flood lan → web peer (%s datagrams/s) runs through the switch; the receiver "
                 "timestamps each datagram in the kernel (SO_TIMESTAMPNS); counted: datagrams received "
                 "after `killswitchctl isolate %s` returned, up to %.1f s later." % (
                     "{:,.0f}".format(leak["pps"] or 0), leak["policy"], leak["hold_s"]))
        L.append("")
        L.append("| switches | after return: max / total | during the call (median) | last datagram before "
                 "return, ms median (p10–p90) | flood received in %.1f s before each call, min "
                 "| receiver drops |" % leak["window_s"])
        L.append("|---:|---:|---:|---:|---:|---:|")
        L.append("| %d | **%d / %d** | %s | %s | %s | %s |" % (
            leak["reps"], leak["after_max"], leak["after_total"], num(leak["during_median"]),
            fmt_ms(leak["margin_ms"]), leak["before_min"], leak["rcvbuf_dropped"]))
        ok = leak["after_total"] == 0 and (leak["before_min"] or 0) > 0
        goals.append(("0 packets of a cut flow after isolate returns",
                      "%d (max %d per switch)" % (leak["after_total"], leak["after_max"]), ok))
    else:
        L.append("(not measured)")
    L.append("")

    L.append("## 4. Throughput through the gateway (iperf3, TCP, lan → allowlisted peer)")
    L.append("")
    if thr and thr.get("none"):
        base = percentile([x["bps"] for x in thr["none"]], 50)
        L.append("One TCP stream, client and server pinned to CPU 0 with the gateway's forwarding "
                 "(`iperf3 -A 0,0 -Z`), %s s per run; median of %d run(s) per state, the states "
                 "interleaved round by round." % (meta.get("iperf_seconds", "?"), len(thr["none"])))
        L.append("")
        broken = extra.get("iperf_broken", 0)
        if broken:
            L.append("**%d iperf3 run(s) broke off** (the allowlisted flow was reset, see Goals) and "
                     "were repeated once the agent was quiet." % broken)
            L.append("")
        ct = thr.get("none_ct") and percentile([x["bps"] for x in thr["none_ct"]], 50)
        L.append("| state | Gbit/s median (min–max) | % of none | % of none, conntrack on | goal |")
        L.append("|---|---:|---:|---:|---|")
        names = [("none", "no killswitch table (agent not running)", None),
                 ("none_ct", "no killswitch table, conntrack on (the site's stateful ruleset)", None),
                 ("normal", "normal (agent running, policies staged)", 99.0),
                 ("isolated", "isolated, flow allowlisted, 10,000-entry policy", 95.0)]
        throughput_rows(L, goals, thr, names, base, ct, "none")
        # Policy v2: inbound to a [Service], compared with the same direction without a table.
        if thr.get("svc_none") and thr.get("svc_isolated"):
            sbase = percentile([x["bps"] for x in thr["svc_none"]], 50)
            sct = thr.get("svc_none_ct") and percentile([x["bps"] for x in thr["svc_none_ct"]], 50)
            names = [("svc_none", "inbound to a service, no killswitch table", None),
                     ("svc_none_ct", "inbound to a service, no killswitch table, conntrack on", None),
                     ("svc_isolated", "inbound to a [Service] (conntrack tuples), isolated, "
                      "after the 10,000-entry gateway", 95.0)]
            throughput_rows(L, goals, thr, names, sbase, sct, "svc_none")
    else:
        L.append("(not measured)")
    L.append("")

    L.append("## 5. Agent memory and idle wake-ups")
    L.append("")
    if procs:
        L.append("Sampled once the agent has been quiet for 2 s (\"busy before\": how long it "
                 "kept working after the previous command returned); wake-ups = voluntary + involuntary "
                 "context switches of all its threads.")
        L.append("")
        L.append("| agent state | VmRSS, MiB | VmHWM, MiB | busy before, s | wake-ups while idle |")
        L.append("|---|---:|---:|---:|---:|")
        labels = [("tiny", "idle, one tiny policy"),
                  ("big", "idle, tiny + 100,000-entry policy staged"),
                  ("all", "idle, all bench policies staged (111,011 addresses)")]
        for key, label in labels:
            p = procs.get(key)
            if not p:
                continue
            L.append("| %s | %.1f | %.1f | %.0f | %d in %g s |" % (
                label, p["rss_kib"] / 1024.0, p["hwm_kib"] / 1024.0, p.get("settle_s", 0),
                p["wakeups"], p["seconds"]))
            goals.append(("no idle wake-ups (%s)" % key, "%d in %g s" % (p["wakeups"], p["seconds"]),
                          p["wakeups"] == 0))
        L.append("")
        if "reload_big_ms" in extra:
            L.append("Staging cost, paid at reload and start rather than at isolate: `killswitchctl reload` "
                     "adding the 100,000-entry policy took %.0f ms; reloading with all bench policies %.0f ms"
                     % (extra["reload_big_ms"], extra.get("reload_all_ms", float("nan"))) +
                     ("; agent start until it answers, all staged, %.0f ms." % extra["start_all_ms"]
                      if "start_all_ms" in extra else "."))
    else:
        L.append("(not measured)")
    L.append("")

    lat = read_json(os.path.join(d, "latency.json"))
    L.append("## 6. `isolate` while the agent is busy")
    L.append("")
    if lat:
        L.append("Wall time of `killswitchctl isolate tiny`, start to exit (an untimed restore in between), "
                 "while: nothing else happens; `killswitchctl reload` runs again and again and each waits for "
                 "a name server that drops its queries (a policy naming its gateway by host name); the "
                 "100,000-entry policy is changed and re-staged by `reload` again and again (one of two "
                 "versions renamed into place, or rewritten whole: \"rewritten\"); 100 clients "
                 "call Status and History over the socket as fast as they can. Background operations: "
                 "reloads, or calls answered.")
        L.append("")
        L.append("| while | runs | p50, ms | p99, ms | max, ms | background operations |")
        L.append("|---|---:|---:|---:|---:|---:|")
        labels = [("idle", "idle"), ("dns", "(a) reload, dead name server"),
                  ("stage", "(b) reload staging 100,000 entries"),
                  ("stage-disk", "(b) rewritten: the 4 MB policy file written anew before each reload"),
                  ("clients", "(c) 100 clients: status, history")]
        for key, label in labels:
            r = lat.get(key)
            if not r:
                continue
            s = r["isolate_ms"]
            L.append("| %s | %d | %s | %s | %s | %d in %.0f s |" % (label, s["n"], num(s["median"]), num(r["p99"]),
                                                                  num(s["max"]), r["background_ops"], r["seconds"]))
            if key != "idle":
                goals.append(("isolate p99 ≤ 100 ms: %s" % label, "%s ms" % num(r["p99"]), r["p99"] <= 100))
    else:
        L.append("(not measured)")
    L.append("")

    if "log_warnings" in extra:
        L.append("Agent log over the whole run: %d warnings, %d errors; %d re-assertions of its table, "
                 "%d event-buffer overflows (\"Lost nftables events\")." % (
                     extra["log_warnings"], extra["log_errors"], extra["log_reassertions"],
                     extra["log_lost_events"]))
        L.append("")
    if "link_switches" in extra:
        L.append("Link layer (docs/design.md, \"The uplinks are links\"): its switch after each isolate "
                 "(P/uplinks refilled, netdev ingress/egress chains bound to the uplinks) took a median %s µs, "
                 "at most %s µs, over %s switches, as the agent logged them." % (
                     extra["link_switch_us_median"], extra["link_switch_us_max"], extra["link_switches"]))
        L.append("")

    if extra.get("iperf_broken"):
        goals.append(("allowlisted flow survives the whole isolated run", "%d run(s) reset" %
                      extra["iperf_broken"], False))
    L.append("## Goals")
    L.append("")
    L.append("| goal | measured | met |")
    L.append("|---|---:|---|")
    for g, m, ok in goals:
        L.append("| %s | %s | %s |" % (g, m, "yes" if ok else "**no**"))
    L.append("")
    text = "\n".join(L)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)


# ------------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("gen-policy")
    p.add_argument("entries", type=int)
    p.add_argument("out")
    p.add_argument("--peer", default="203.0.113.5")
    p.add_argument("--service", help="also a [Service] with this address, tcp:443")
    p.set_defaults(fn=gen_policy)

    p = sub.add_parser("switch-timing")
    p.add_argument("--ctl", required=True)
    p.add_argument("--socket", required=True)
    p.add_argument("--dir", required=True)
    p.add_argument("--netns", required=True, help="the lab namespace this must run in")
    p.add_argument("--reps", type=int, default=30)
    p.add_argument("--out", required=True)
    p.add_argument("sizes", type=int, nargs="+")
    p.set_defaults(fn=switch_timing)

    p = sub.add_parser("latency")
    p.add_argument("--ctl", required=True)
    p.add_argument("--socket", required=True)
    p.add_argument("--policy", required=True)
    p.add_argument("--load", choices=["idle", "dns", "stage", "clients"], required=True)
    p.add_argument("--label", help="the name of this load in the output (default: --load)")
    p.add_argument("--touch", help="with --load stage: the policy file to change before each reload")
    p.add_argument("--rewrite", action="store_true",
                   help="with --touch: write the whole file anew before each reload instead of renaming a version in")
    p.add_argument("--clients", type=int, default=100)
    p.add_argument("--reps", type=int, default=200)
    p.add_argument("--pause", type=float, default=0.02)
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--out", required=True)
    p.set_defaults(fn=latency)

    p = sub.add_parser("udp-recv")
    p.add_argument("--bind", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(fn=udp_recv)

    p = sub.add_parser("udp-send")
    p.add_argument("--dst", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--pps", type=float, default=50000)
    p.add_argument("--duration", type=float, default=120)
    p.add_argument("--out", required=True)
    p.set_defaults(fn=udp_send)

    p = sub.add_parser("leak-switch")
    p.add_argument("--ctl", required=True)
    p.add_argument("--socket", required=True)
    p.add_argument("--policy", required=True)
    p.add_argument("--reps", type=int, default=10)
    p.add_argument("--settle", type=float, default=0.3)
    p.add_argument("--hold", type=float, default=0.5)
    p.add_argument("--out", required=True)
    p.set_defaults(fn=leak_switch)

    p = sub.add_parser("leak-analyze")
    p.add_argument("--switch", required=True)
    p.add_argument("--stamps", required=True)
    p.add_argument("--sender", required=True)
    p.add_argument("--window", type=float, default=0.2)
    p.add_argument("--out", required=True)
    p.set_defaults(fn=leak_analyze)

    p = sub.add_parser("proc-sample")
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--label", required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(fn=proc_sample)

    p = sub.add_parser("settle")
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--quiet", type=float, default=2)
    p.add_argument("--max", type=float, default=45)
    p.set_defaults(fn=settle)

    p = sub.add_parser("iperf-add")
    p.add_argument("--label", required=True)
    p.add_argument("--json", required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(fn=iperf_add)

    p = sub.add_parser("iperf-cost")
    p.add_argument("--label", required=True)
    p.add_argument("--json", required=True, help="where the client's JSON goes")
    p.add_argument("--server-pid", type=int, required=True)
    p.add_argument("--cpu", type=int, default=0)
    p.add_argument("--perf", help="also a cpu-clock profile of the CPU into this file")
    p.add_argument("--out", required=True)
    p.add_argument("cmd", nargs=argparse.REMAINDER)
    p.set_defaults(fn=iperf_cost)

    p = sub.add_parser("cost-report")
    p.add_argument("--json", required=True)
    p.set_defaults(fn=cost_report)

    p = sub.add_parser("profile-report")
    p.add_argument("--dir", required=True, help="the perf files of iperf-cost --perf")
    p.add_argument("--cost", required=True, help="cost.json")
    p.set_defaults(fn=profile_report)

    p = sub.add_parser("put")
    p.add_argument("key")
    p.add_argument("value")
    p.add_argument("--add", action="store_true", help="add to the value already there")
    p.add_argument("--out", required=True)
    p.set_defaults(fn=put)

    p = sub.add_parser("report")
    p.add_argument("--dir", required=True)
    p.add_argument("--out")
    p.set_defaults(fn=report)

    args = ap.parse_args()
    args.fn(args)


if __name__ == "__main__":
    main()
