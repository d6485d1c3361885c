#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Hostile and careless control-socket clients for tests/e2e/test-robust.sh.

    abuse.py SOCK idle N HOLDFILE       open N connections, print "accepted A refused R", keep them
                                        open while HOLDFILE exists
    abuse.py SOCK raw FILE              send FILE's bytes, print what comes back until EOF (5 s at most)
    abuse.py SOCK flood BYTES           send BYTES bytes without a NUL, print the reply and the time
    abuse.py SOCK call JSON...          send each JSON request (NUL-terminated) on one connection,
                                        print each reply on a line
    abuse.py SOCK slow                  trickle a request one byte a second; print after how many
                                        seconds the agent closed the connection
    abuse.py SOCK noread N SECONDS      pipeline N Status requests, read nothing for SECONDS, close
    abuse.py SOCK watch STOPFILE OUT    every 0.2 s a fresh connection asks Status; until STOPFILE
                                        exists; write "calls N failed F max SECONDS" to OUT (failed:
                                        no reply within WATCH_BOUND seconds)
    abuse.py SOCK refuse N BYTES        N Isolate calls (refused for an unprivileged caller) with a
                                        policy name of BYTES control characters; print the count
    abuse.py SOCK histhold N HOLDFILE   N connections each ask History n=650 and never read; kept
                                        open while HOLDFILE exists
    abuse.py SOCK timed JSON            one request on a fresh connection: print "SECONDS OUTCOME"
    abuse.py SOCK showflood N SECONDS POLICY
                                        N connections each ask Show POLICY again and again (reading
                                        the replies) for SECONDS; print how many were answered
    abuse.py SOCK histflood N SECONDS   the same with History n=1000
    abuse.py SOCK showhold N POLICY HOLDFILE
                                        N connections each ask Show POLICY and never read; kept open
                                        while HOLDFILE exists
    abuse.py SOCK uids FIRST COUNT STAGGER MODE ARGS...
                                        (as root) MODE in COUNT processes started STAGGER seconds
                                        apart, each with a uid of its own, FIRST, FIRST+1, ... (no
                                        passwd entry needed): one user with many (subordinate) uids;
                                        print what the first printed with the numbers of all summed
"""
import json, os, re, socket, sys, threading, time

def connect(path, timeout=5.0):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(path)
    return s

def read_reply(s, deadline=5.0):
    buf = b""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            s.settimeout(max(0.01, end - time.monotonic()))
            chunk = s.recv(65536)
        except socket.timeout:
            break
        except OSError as e:
            return buf, "error %s" % e.strerror
        if not chunk:
            return buf, "closed"
        buf += chunk
        if b"\0" in buf:
            return buf, "reply"
    return buf, "timeout"

def then_closed(s, how):
    """After a reply: does the agent close the connection (within a second)?"""
    if how != "reply":
        return how
    try:
        s.settimeout(1.0)
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return "reply, then closed"
    except socket.timeout:
        return "reply, left open"
    except OSError as e:
        return "reply, then closed (%s)" % e.strerror

def show(buf):
    return buf.replace(b"\0", b"\\0").decode("utf-8", "replace")[:400]

def idle(path, n, hold):
    socks = []
    for _ in range(n):
        try:
            socks.append(connect(path))
        except OSError:
            socks.append(None)
    time.sleep(0.5)
    accepted = refused = 0
    for s in socks:
        if s is None:
            refused += 1
            continue
        s.setblocking(False)
        try:
            data = s.recv(1)
            refused += 1 if data == b"" else 0
            accepted += 0 if data == b"" else 1
        except BlockingIOError:
            accepted += 1
        except OSError:
            refused += 1
    print("accepted %d refused %d" % (accepted, refused), flush=True)
    while os.path.exists(hold):
        time.sleep(0.1)
    for s in socks:
        if s:
            s.close()

def raw(path, data):
    s = connect(path)
    try:
        s.sendall(data)
    except OSError as e:
        print("send: %s" % e.strerror)
    buf, how = read_reply(s)
    print("%s: %s" % (then_closed(s, how), show(buf)))

def flood(path, size):
    s = connect(path)
    start = time.monotonic()
    result = {}
    def send():
        chunk = b"a" * 65536
        sent = 0
        try:
            while sent < size:
                sent += s.send(chunk[: min(len(chunk), size - sent)])
        except OSError as e:
            result["send"] = e.strerror
        result["sent"] = sent
    t = threading.Thread(target=send, daemon=True)
    t.start()
    buf, how = read_reply(s)
    how = then_closed(s, how)
    s.close()
    t.join(5)
    print("%s after %.2fs (sent %s bytes, %s): %s" % (how, time.monotonic() - start, result.get("sent"),
                                                       result.get("send", "no send error"), show(buf)))

def call(path, requests):
    s = connect(path)
    for r in requests:
        s.sendall(os.fsencode(r) + b"\0")
        buf, how = read_reply(s)
        print("%s: %s" % (how, show(buf)), flush=True)
        if how != "reply":
            break

def slow(path):
    s = connect(path)
    start = time.monotonic()
    # Connections are accepted in the order they were made: once this line is out, the
    # caller may start other clients of the same user without racing this one for a slot.
    print("connected", flush=True)
    request = b'{"method":"io.killswitch.Status","parameters":{}}'
    for i in range(60):
        try:
            s.send(request[i % len(request):][:1])
        except OSError:
            break
        s.settimeout(1.0)
        try:
            if s.recv(1) == b"":
                break
        except socket.timeout:
            pass
        except OSError:
            break
    print("closed after %.1fs" % (time.monotonic() - start))

def noread(path, n, seconds):
    s = connect(path)
    s.setblocking(False)
    data = b'{"method":"io.killswitch.Status","parameters":{}}\0' * n
    sent = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            sent += s.send(data[sent:sent + 65536])
        except BlockingIOError:
            time.sleep(0.05)
        except OSError:
            break
        if sent >= len(data):
            time.sleep(0.05)
    print("sent %d of %d bytes without reading" % (sent, len(data)))
    s.close()

# A Status call of the watcher fails after this long. An agent that blocks on one of the
# hostile clients stalls for as long as that client holds it (the non-reading one 10 s, the
# trickling one until the agent's 10 s cut-off): 5 s tells them apart on a busy machine too.
WATCH_BOUND = 5.0

def watch(path, stop, out):
    calls = failed = 0
    worst = 0.0
    while not os.path.exists(stop):
        start = time.monotonic()
        try:
            s = connect(path, WATCH_BOUND)
            s.sendall(b'{"method":"io.killswitch.Status","parameters":{}}\0')
            buf, how = read_reply(s, WATCH_BOUND)
            s.close()
            ok = how == "reply" and b'"parameters"' in buf and b'"error"' not in buf
        except OSError:
            ok = False
        took = time.monotonic() - start
        calls += 1
        worst = max(worst, took)
        if not ok or took > WATCH_BOUND:
            failed += 1
        time.sleep(0.2)
    with open(out, "w") as f:
        f.write("calls %d failed %d max %.3f\n" % (calls, failed, worst))

def refuse(path, n, size):
    name = "".join(chr(1 + i % 30) for i in range(size))
    req = json.dumps({"method": "io.killswitch.Isolate",
                      "parameters": {"policy": name, "reason": name[:1000],
                                     "ssh_connection": "203.0.113.66 4711 10.0.0.1 22"}}).encode() + b"\0"
    s = connect(path)
    done = 0
    for _ in range(n):
        try:
            s.sendall(req)
            buf, how = read_reply(s)
        except OSError:
            how = "error"
        if how != "reply":
            s.close()
            try:
                s = connect(path)
            except OSError:
                time.sleep(0.05)
            continue
        done += 1
    print("refused calls answered: %d of %d" % (done, n), flush=True)

def hold(path, n, request, holdfile, what):
    """n connections each send request and never read; kept until holdfile is removed."""
    req = json.dumps(request).encode() + b"\0"
    socks = []
    for _ in range(n):
        try:
            s = connect(path)
            s.sendall(req)
            socks.append(s)
        except OSError:
            pass
    print("holding %d %s connections" % (len(socks), what), flush=True)
    while os.path.exists(holdfile):
        time.sleep(0.1)
    for s in socks:
        s.close()

def histhold(path, n, holdfile):
    hold(path, n, {"method": "io.killswitch.History", "parameters": {"n": 650}}, holdfile, "History")

def timed(path, request):
    start = time.monotonic()
    try:
        s = connect(path, 10.0)
        s.sendall(os.fsencode(request) + b"\0")
        buf, how = read_reply(s, 10.0)
        s.close()
        outcome = "error" if how != "reply" else ("error-reply" if b'"error"' in buf else "ok")
        detail = show(buf)[:200]
    except OSError as e:
        outcome, detail = "error", e.strerror
    print("%.3f %s %s" % (time.monotonic() - start, outcome, detail), flush=True)

def note_done():
    """With $ABUSE_DONE_LOG set: the wall-clock time of each call answered without error, a line each."""
    log = os.environ.get("ABUSE_DONE_LOG")
    if log:
        with open(log, "a") as f:
            f.write("%.6f\n" % time.time())

def showflood(path, n, seconds, policy):
    return callflood(path, n, seconds, {"method": "io.killswitch.Show", "parameters": {"policy": policy}}, "Show")

def histflood(path, n, seconds):
    return callflood(path, n, seconds, {"method": "io.killswitch.History", "parameters": {"n": 1000}}, "History")

def callflood(path, n, seconds, request, what):
    req = json.dumps(request).encode() + b"\0"
    end = time.monotonic() + seconds
    answered = [0] * n
    busy = [0] * n
    def worker(i):
        while time.monotonic() < end:
            try:
                s = connect(path)
                while time.monotonic() < end:
                    s.sendall(req)
                    buf, how = read_reply(s, 30.0)
                    if how != "reply":
                        break
                    answered[i] += 1
                    busy[i] += b'"error"' in buf[:200]
                    if b'"error"' not in buf[:200]:
                        note_done()
                s.close()
            except OSError:
                time.sleep(0.05)
    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 35)
    return "%s answered %d times on %d connections in %ds (%d of them errors: Busy, ...)" % (
        what, sum(answered), n, seconds, sum(busy))

def showhold(path, n, policy, holdfile):
    hold(path, n, {"method": "io.killswitch.Show", "parameters": {"policy": policy}}, holdfile, "Show")

def as_uids(path, first, count, stagger, mode, args):
    kids = []
    for i in range(count):
        time.sleep(stagger if i else 0)
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            os.dup2(w, 1)
            uid = first + i
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
            run(path, mode, args)
            sys.stdout.flush()
            os._exit(0)
        os.close(w)
        kids.append((pid, r))
    lines = []
    for pid, r in kids:
        with os.fdopen(r) as f:
            lines.append(f.read().strip())
        os.waitpid(pid, 0)
    count_re = re.compile(r"(?<![\w.])\d+(?![\w.])")     # "5 times", "(5 of", not "15s"
    numbers = [[int(n) for n in count_re.findall(line)] for line in lines if line]
    sums = iter([sum(ns[i] for ns in numbers if len(ns) > i) for i in range(len(numbers[0]) if numbers else 0)])
    print("%d uids from %d: %s" % (count, first, count_re.sub(lambda _: str(next(sums)), lines[0] if lines else "")),
          flush=True)

def run(path, mode, args):
    if mode == "idle":
        idle(path, int(args[0]), args[1])
    elif mode == "raw":
        raw(path, open(args[0], "rb").read())
    elif mode == "flood":
        flood(path, int(args[0]))
    elif mode == "call":
        call(path, args)
    elif mode == "slow":
        slow(path)
    elif mode == "noread":
        noread(path, int(args[0]), float(args[1]))
    elif mode == "refuse":
        refuse(path, int(args[0]), int(args[1]))
    elif mode == "histhold":
        histhold(path, int(args[0]), args[1])
    elif mode == "showflood":
        print(showflood(path, int(args[0]), float(args[1]), args[2]), flush=True)
    elif mode == "histflood":
        print(histflood(path, int(args[0]), float(args[1])), flush=True)
    elif mode == "showhold":
        showhold(path, int(args[0]), args[1], args[2])
    elif mode == "uids":
        as_uids(path, int(args[0]), int(args[1]), float(args[2]), args[3], args[4:])
    elif mode == "timed":
        timed(path, args[0])
    elif mode == "watch":
        watch(path, args[0], args[1])
    else:
        sys.exit("unknown mode " + mode)

run(sys.argv[1], sys.argv[2], sys.argv[3:])
