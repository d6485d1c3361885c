#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Traffic for test-exact-icmp.sh, sent from whichever lab namespace runs this (ip netns exec).

  icmp.py send DST QSRC QSPORT QDST QDPORT --marker M [--src ADDR] [--len N]
      One ICMP "time exceeded" (ICMPv6 type 3 for an IPv6 DST) to DST, quoting a TCP segment
      QSRC:QSPORT -> QDST:QDPORT (as if that segment had died on the way), followed by N bytes
      (default 400) of data that start with M: what an error carries besides the quoted headers.
      Exit 0 if it was sent, 2 if the kernel refused.
  icmp.py recv M --ready FILE --sent FILE2 [--wait S]
      Wait for an ICMP or ICMPv6 message that carries M, on raw sockets of both families, until
      S seconds (default 2) after FILE2 exists (the sender is done: a busy machine may take long
      to start it), 60 s at most; create FILE once listening. Exit 0 if it came, 1 if not.
  icmp.py bulk ADDR PORT [--size N] [--wait S] [--src ADDR]
      Send N bytes (default 262144) over TCP to an echo server and read them back; exit 0 if all
      came back unchanged within S seconds (default 20). Full-size segments: a path whose MTU is
      smaller than the sender's link needs path MTU discovery, i.e. the ICMP errors.

No scapy: plain sockets. Nothing leaves the namespaces of the lab.
"""

import argparse
import os
import select
import socket
import struct
import sys
import threading
import time


def is6(addr):
    return ":" in addr


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def quoted_segment(src, dst, sport, dport):
    """The start of a TCP segment src:sport -> dst:dport as an error quotes it: IP header, 20 bytes of TCP."""
    tcp = struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 5 << 4, 0x10, 65535, 0, 0)
    if is6(src):
        return struct.pack("!IHBB16s16s", 6 << 28, len(tcp), socket.IPPROTO_TCP, 64,
                           socket.inet_pton(socket.AF_INET6, src), socket.inet_pton(socket.AF_INET6, dst)) + tcp
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0x4000, 64, socket.IPPROTO_TCP, 0,
                     socket.inet_aton(src), socket.inet_aton(dst))
    return ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:] + tcp


def send(args):
    data = (args.marker.encode() + b" exfil-via-icmp-error " * 40)[: args.len]
    quoted = quoted_segment(args.qsrc, args.qdst, args.qsport, args.qdport)
    if is6(args.dst):
        s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
        msg = struct.pack("!BBHI", 3, 0, 0, 0) + quoted + data  # the kernel fills in the checksum
    else:
        s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        msg = struct.pack("!BBHI", 11, 0, 0, 0) + quoted + data
        msg = msg[:2] + struct.pack("!H", checksum(msg)) + msg[4:]
    if args.src:
        s.bind((args.src, 0))
    try:
        s.sendto(msg, (args.dst, 0))
    except OSError as e:
        print("send: %s" % e)
        return 2
    return 0


def recv(args):
    socks = [socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP),
             socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)]
    open(args.ready, "w").close()
    marker = args.marker.encode()
    deadline = time.monotonic() + 60
    sent = False
    while True:
        if not sent and os.path.exists(args.sent):
            sent = True
            deadline = min(deadline, time.monotonic() + args.wait)
        left = deadline - time.monotonic()
        if left <= 0:
            print("nothing carrying %s arrived" % args.marker)
            return 1
        ready, _, _ = select.select(socks, [], [], min(left, 0.1))
        for s in ready:
            data, peer = s.recvfrom(65536)
            if marker in data:
                print("arrived from %s: %d bytes" % (peer[0], len(data)))
                return 0


def bulk(args):
    payload = os.urandom(args.size)
    s = socket.socket(socket.AF_INET6 if is6(args.addr) else socket.AF_INET, socket.SOCK_STREAM)
    if args.src:
        s.bind((args.src, 0))
    s.settimeout(args.wait)
    start = time.monotonic()
    try:
        s.connect((args.addr, args.port))
    except OSError as e:
        print("connect: %s" % e)
        return 1

    def writer():
        try:
            s.sendall(payload)
        except OSError:
            pass

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    got = bytearray()
    try:
        while len(got) < len(payload):
            left = args.wait - (time.monotonic() - start)
            if left <= 0:
                break
            s.settimeout(left)
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
    except OSError as e:
        print("recv: %s" % e)
    if bytes(got) != payload:
        print("%d of %d bytes back after %.1f s" % (len(got), len(payload), time.monotonic() - start))
        return 1
    print("%d bytes back in %.2f s" % (len(got), time.monotonic() - start))
    return 0


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("send")
    c.add_argument("dst")
    c.add_argument("qsrc")
    c.add_argument("qsport", type=int)
    c.add_argument("qdst")
    c.add_argument("qdport", type=int)
    c.add_argument("--marker", required=True)
    c.add_argument("--src")
    c.add_argument("--len", type=int, default=400)
    c = sub.add_parser("recv")
    c.add_argument("marker")
    c.add_argument("--ready", required=True)
    c.add_argument("--sent", required=True)
    c.add_argument("--wait", type=float, default=2.0)
    c = sub.add_parser("bulk")
    c.add_argument("addr")
    c.add_argument("port", type=int)
    c.add_argument("--size", type=int, default=262144)
    c.add_argument("--wait", type=float, default=20.0)
    c.add_argument("--src")
    args = p.parse_args()
    return {"send": send, "recv": recv, "bulk": bulk}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
