#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Packets for test-exact-upkeep.sh, sent from whichever lab namespace runs this (ip netns exec).

  upkeep.py udp SPORT ADDR DPORT [--dev IF] [--wait S] [--src ADDR]
      One datagram from SPORT (bound on ADDR or the wildcard address, SO_BROADCAST, optionally on
      device IF) carrying a random payload; exit 0 if the same payload comes back within S seconds
      (the lab's echo servers), 1 if not, 2 if it could not be sent (EPERM: cut on the way out).
  upkeep.py icmp6 TYPE ADDR [--hops N] [--dev IF] [--src ADDR]
      One ICMPv6 message of TYPE (e.g. 135, a neighbour solicitation) with hop limit N (default
      255) and a payload after the target field; exit 0 if it was sent, 2 if the kernel refused.
  upkeep.py join IF GROUP
      Join the IPv6 multicast GROUP on IF for a second: the kernel sends its MLD reports.

No scapy: plain sockets. Nothing leaves the namespaces of the lab.
"""

import argparse
import os
import socket
import struct
import sys
import time


def family_of(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def bind_device(s, dev):
    if dev:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, dev.encode())


def udp(args):
    fam = family_of(args.addr)
    payload = b"exfil-via-upkeep-rule: " + os.urandom(8).hex().encode()
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if fam == socket.AF_INET:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    bind_device(s, args.dev)
    s.bind((args.src or ("::" if fam == socket.AF_INET6 else "0.0.0.0"), args.sport))
    s.settimeout(args.wait)
    try:
        s.sendto(payload, (args.addr, args.dport))
    except OSError as e:
        print("send: %s" % e)
        return 2
    try:
        while True:
            data, peer = s.recvfrom(65536)
            if data.strip() == payload:
                print("answer from %s" % (peer,))
                return 0
    except socket.timeout:
        print("no answer")
        return 1


def icmp6(args):
    s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, args.hops)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, args.hops)
    bind_device(s, args.dev)
    if args.src:
        s.bind((args.src, 0))
    target = socket.inet_pton(socket.AF_INET6, args.addr)
    # type, code, checksum (the kernel fills it in), reserved/flags, target; then the payload.
    msg = struct.pack("!BBHI", args.type, 0, 0, 0) + target + b"exfil-via-nd-rule: " + os.urandom(8).hex().encode()
    try:
        s.sendto(msg, (args.addr, 0))
    except OSError as e:
        print("send: %s" % e)
        return 2
    return 0


def join(args):
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    mreq = socket.inet_pton(socket.AF_INET6, args.group) + struct.pack("@I", socket.if_nametoindex(args.dev))
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, mreq)
    time.sleep(1)
    return 0


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    u = sub.add_parser("udp")
    u.add_argument("sport", type=int)
    u.add_argument("addr")
    u.add_argument("dport", type=int)
    u.add_argument("--dev")
    u.add_argument("--wait", type=float, default=1.0)
    u.add_argument("--src")
    i = sub.add_parser("icmp6")
    i.add_argument("type", type=int)
    i.add_argument("addr")
    i.add_argument("--hops", type=int, default=255)
    i.add_argument("--dev")
    i.add_argument("--src")
    j = sub.add_parser("join")
    j.add_argument("dev")
    j.add_argument("group")
    args = p.parse_args()
    return {"udp": udp, "icmp6": icmp6, "join": join}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
