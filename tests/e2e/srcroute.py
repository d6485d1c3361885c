#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Source-routed packets for test-exact-links.sh, sent from whichever lab namespace runs this.

  srcroute.py v4 SRC DST VIA N [--strict]
      N UDP datagrams 67 -> 68 (the DHCP upkeep's ports) from SRC to DST with a loose (--strict:
      strict) source route option naming VIA as the next hop, UDP checksum 0.
  srcroute.py v6 SRC DST VIA N [--rh0]
      N ICMPv6 neighbour advertisements (hop limit 255, the ND upkeep's) from SRC to DST with a
      segment routing header [VIA, DST], segments left 1; --rh0: behind a type 0 routing header
      whose segments left is 0 (the kernel walks on to the next routing header).

A gateway with accept_source_route=1 / seg6_enabled=1 takes them as its own in prerouting, then
forwards them to VIA. No scapy: raw sockets with the IP header included. Nothing leaves the
namespaces of the lab. Exit 0 if all were sent.
"""

import socket
import struct
import sys
import time

from icmp import checksum  # beside this script


def v4(src, dst, via, k, strict):
    option = struct.pack("!BBBB4s", 1, 137 if strict else 131, 7, 4, socket.inet_aton(via))  # NOP, LSRR/SSRR
    udp_payload = b"ks-srcroute-v4-%d" % k
    udp = struct.pack("!HHHH", 67, 68, 8 + len(udp_payload), 0) + udp_payload
    ihl = (20 + len(option)) // 4
    ip = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, 20 + len(option) + len(udp), 0, 0, 64,
                     socket.IPPROTO_UDP, 0, socket.inet_aton(src), socket.inet_aton(dst)) + option
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    s.sendto(ip + udp, (dst, 0))


def v6(src, dst, via, k, rh0):
    a = lambda x: socket.inet_pton(socket.AF_INET6, x)
    na = struct.pack("!BBHI16s", 136, 0, 0, 0x20000000, a("2001:db8:77::%x" % (k + 1)))
    na += struct.pack("!BB", 200, 2) + (b"ks-srcroute-v6-%d" % k).ljust(14, b"z")  # an unknown option
    # the checksum of the final destination (VIA)
    pseudo = a(src) + a(via) + struct.pack("!IxxxB", len(na), 58)
    na = na[:2] + struct.pack("!H", checksum(pseudo + na)) + na[4:]
    srh = struct.pack("!BBBBBBH", 58, 4, 4, 1, 1, 0, 0) + a(via) + a(dst)  # next header, 2 segments
    ext, first = srh, 43
    if rh0:
        ext = struct.pack("!BBBBI", 43, 0, 0, 0, 0) + srh  # type 0, no addresses, segments left 0
    ip = struct.pack("!IHBB16s16s", 6 << 28, len(ext) + len(na), first, 255, a(src), a(dst))
    s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)
    s.sendto(ip + ext + na, (dst, 0))


def main():
    family, src, dst, via, n = sys.argv[1:6]
    flag = sys.argv[6:] == ["--strict"] if family == "v4" else sys.argv[6:] == ["--rh0"]
    for k in range(int(n)):
        (v4 if family == "v4" else v6)(src, dst, via, k, flag)
        time.sleep(0.02)
    return 0


if __name__ == "__main__":
    sys.exit(main())
