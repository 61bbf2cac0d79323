#!/usr/bin/env python3
"""Capture real kernel Netlink replies as seed inputs for the `parse` fuzz target.

Every file written is the exact byte string one `recv()` returned: a route, link, address,
neighbour, conntrack and generic-netlink dump (one file per datagram), multicast events, and
error replies with extended acks (capped and not capped, policy errors, a missing-attribute
error, a dump that ends in NLMSG_DONE carrying an ext-ack message).

It never touches the host: run it inside a private user + network namespace, from this directory:

    unshare -Urn python3 capture_corpus.py corpus/parse

Setup (a veth pair, addresses, routes, neighbours, conntrack entries) happens inside that
namespace, and everything vanishes with it.
"""

import os
import socket
import struct
import subprocess
import sys

NETLINK_ROUTE = 0
NETLINK_NETFILTER = 12
NETLINK_GENERIC = 16
SOL_NETLINK = 270
NETLINK_CAP_ACK = 10
NETLINK_EXT_ACK = 11
NETLINK_GET_STRICT_CHK = 12

NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLM_F_DUMP = 0x300
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400
NLMSG_ERROR = 2
NLMSG_DONE = 3

AF_UNSPEC, AF_INET, AF_INET6 = 0, 2, 10

RTM_GETLINK, RTM_GETADDR = 18, 22
RTM_NEWROUTE, RTM_GETROUTE = 24, 26
RTM_GETNEIGH = 30
RTA_DST, RTA_OIF, RTA_GATEWAY = 1, 4, 5
RTMGRP_LINK, RTMGRP_IPV4_IFADDR, RTMGRP_IPV4_ROUTE = 0x1, 0x10, 0x40
NLA_F_NESTED = 0x8000

SEQ = [100]
OUT = "."
WRITTEN = []


def run(cmd):
    subprocess.run(cmd, shell=True, check=True)


def nlmsg(ty, flags, payload):
    SEQ[0] += 1
    return struct.pack("=IHHII", 16 + len(payload), ty, flags, SEQ[0], 0) + payload


def attr(ty, payload):
    raw = struct.pack("=HH", 4 + len(payload), ty) + payload
    return raw + b"\0" * (-len(raw) % 4)


def nest(ty, *children):
    return attr(ty | NLA_F_NESTED, b"".join(children))


def sock(proto, groups=0, ext_ack=True, cap_ack=False, strict=False):
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, proto)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    if ext_ack:
        s.setsockopt(SOL_NETLINK, NETLINK_EXT_ACK, 1)
    if cap_ack:
        s.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1)
    if strict:
        s.setsockopt(SOL_NETLINK, NETLINK_GET_STRICT_CHK, 1)
    s.bind((0, groups))
    s.settimeout(2.0)
    return s


def save(name, data):
    path = os.path.join(OUT, "kernel-%s.bin" % name)
    with open(path, "wb") as f:
        f.write(data)
    WRITTEN.append((path, len(data)))


def last_type(data):
    """Type of the last message in a datagram."""
    off, ty = 0, None
    while off + 16 <= len(data):
        ln, ty = struct.unpack_from("=IH", data, off)
        if ln < 16:
            break
        off += (ln + 3) & ~3
    return ty


def exchange(s, name, request, max_files=6):
    """Send one request and save every reply datagram until DONE or an error/ack."""
    s.send(request)
    n = 0
    while True:
        data = s.recv(1 << 16)
        if n < max_files:
            save("%s-%d" % (name, n), data)
        n += 1
        if last_type(data) in (NLMSG_DONE, NLMSG_ERROR):
            return data


def dump(s, name, ty, header, extra=b""):
    return exchange(s, name, nlmsg(ty, NLM_F_REQUEST | NLM_F_DUMP, header + extra))


def rtmsg(family=0, dst_len=0, table=0, protocol=0, scope=0, rtype=0, flags=0):
    return struct.pack("=BBBBBBBBI", family, dst_len, 0, 0, table, protocol, scope, rtype, flags)


def setup():
    run("ip link set lo up")
    run("ip link add veth0 type veth peer name veth1")
    run("ip link set veth0 up && ip link set veth1 up")
    run("ip link add br0 type bridge && ip link set br0 up")
    run("ip addr add 10.10.0.1/24 dev veth0")
    run("ip addr add 10.10.1.1/24 dev veth1")
    run("ip -6 addr add 2001:db8:10::1/64 dev veth0 nodad")
    run("ip -6 addr add 2001:db8:11::1/64 dev veth1 nodad")
    for i in range(20):
        run("ip route add 198.18.%d.0/24 via 10.10.0.2 dev veth0 metric %d" % (i, i + 1))
    run("ip route add 198.19.0.0/16 nexthop via 10.10.0.2 weight 1 nexthop via 10.10.1.2 weight 2")
    run("ip route add 198.20.0.0/16 via 10.10.0.2 mtu 1400 advmss 1360 table 100")
    run("ip route add blackhole 198.21.0.0/16")
    for i in range(10):
        run("ip -6 route add 2001:db8:100:%x::/64 via 2001:db8:10::2 dev veth0" % i)
    run("ip neigh add 10.10.0.2 lladdr 02:00:00:00:00:02 dev veth0 nud permanent")
    run("ip neigh add 10.10.1.2 lladdr 02:00:00:00:00:03 dev veth1 nud reachable")
    run("ip -6 neigh add 2001:db8:10::2 lladdr 02:00:00:00:00:02 dev veth0")


def ct_tuple(ty, src, dst, proto, sport, dport):
    return nest(
        ty,
        nest(1, attr(1, socket.inet_aton(src)), attr(2, socket.inet_aton(dst))),
        nest(2, attr(1, bytes([proto])), attr(2, struct.pack(">H", sport)),
             attr(3, struct.pack(">H", dport))),
    )


def ct_create(s, i, proto):
    src, dst = "10.10.0.%d" % (10 + i), "10.10.1.%d" % (10 + i)
    sport, dport = 40000 + i, 80 if proto == 6 else 53
    body = struct.pack("=BBH", AF_INET, 0, 0)
    body += ct_tuple(1, src, dst, proto, sport, dport)
    body += ct_tuple(2, dst, src, proto, dport, sport)
    body += attr(7, struct.pack(">I", 300))  # CTA_TIMEOUT
    body += attr(8, struct.pack(">I", i))  # CTA_MARK
    if proto == 6:  # CTA_PROTOINFO / CTA_PROTOINFO_TCP / CTA_PROTOINFO_TCP_STATE = ESTABLISHED
        body += nest(4, nest(1, attr(1, bytes([3]))))
    ty = (1 << 8) | 0  # IPCTNL_MSG_CT_NEW
    return nlmsg(ty, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, body)


def genl_family_id(g, name):
    req = nlmsg(0x10, NLM_F_REQUEST, struct.pack("=BBH", 3, 1, 0) + attr(2, name + b"\0"))
    g.send(req)
    data = g.recv(1 << 16)
    off = 16 + 4
    while off + 4 <= len(data):
        ln, ty = struct.unpack_from("=HH", data, off)
        if ln < 4:
            break
        if ty & 0x3FFF == 1:
            return struct.unpack_from("=H", data, off + 4)[0]
        off += (ln + 3) & ~3
    return None


def main():
    global OUT
    OUT = sys.argv[1] if len(sys.argv) > 1 else "corpus/parse"
    os.makedirs(OUT, exist_ok=True)

    # Events: subscribe before the setup so its notifications queue up.
    events = sock(NETLINK_ROUTE, RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV4_ROUTE)
    setup()
    n = 0
    try:
        while n < 4:
            data = events.recv(1 << 16)
            if n < 4:
                save("events-%d" % n, data)
            n += 1
    except socket.timeout:
        pass

    r = sock(NETLINK_ROUTE)
    dump(r, "route4-dump", RTM_GETROUTE, rtmsg(AF_INET))
    dump(r, "route6-dump", RTM_GETROUTE, rtmsg(AF_INET6))
    dump(r, "link-dump", RTM_GETLINK, struct.pack("=BxHiII", AF_UNSPEC, 0, 0, 0, 0))
    dump(r, "addr-dump", RTM_GETADDR, struct.pack("=BBBBI", AF_UNSPEC, 0, 0, 0, 0))
    dump(r, "neigh-dump", RTM_GETNEIGH, struct.pack("=BxxxiHBB", AF_UNSPEC, 0, 0, 0, 0))

    # Route add through an unreachable gateway: "Nexthop has invalid gateway", not capped
    # (the request is echoed), then capped.
    bad_route = rtmsg(AF_INET, 24, 254, 3, 0, 1) + attr(RTA_DST, socket.inet_aton("198.51.100.0")) \
        + attr(RTA_GATEWAY, socket.inet_aton("192.0.2.1"))
    flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL
    exchange(r, "error-extack", nlmsg(RTM_NEWROUTE, flags, bad_route))
    rc = sock(NETLINK_ROUTE, cap_ack=True)
    exchange(rc, "error-extack-capped", nlmsg(RTM_NEWROUTE, flags, bad_route))
    # A policy error: RTA_OIF of 2 bytes (offset + policy TLVs).
    bad_oif = rtmsg(AF_INET, 24, 254, 3, 0, 1) + attr(RTA_DST, socket.inet_aton("198.51.100.0")) \
        + attr(RTA_OIF, b"\x01\x00")
    exchange(r, "error-policy", nlmsg(RTM_NEWROUTE, flags, bad_oif))
    # A successful request with an ack.
    good = rtmsg(AF_INET, 24, 254, 3, 0, 1) + attr(RTA_DST, socket.inet_aton("198.51.100.0")) \
        + attr(RTA_GATEWAY, socket.inet_aton("10.10.0.2"))
    exchange(r, "ack", nlmsg(RTM_NEWROUTE, flags, good))
    # A strict dump with a bad header: the error arrives in NLMSG_DONE with an ext-ack message.
    rs = sock(NETLINK_ROUTE, strict=True)
    dump(rs, "done-extack", RTM_GETROUTE, rtmsg(AF_INET, dst_len=5))

    # Conntrack: TCP and UDP entries, then a dump, then a create without the reply tuple.
    nf = sock(NETLINK_NETFILTER)
    for i in range(12):
        exchange(nf, "ct-create-ack", ct_create(nf, i, 6 if i % 2 == 0 else 17),
                 max_files=0 if i else 1)
    dump(nf, "ct-dump", (1 << 8) | 1, struct.pack("=BBH", AF_INET, 0, 0))
    body = struct.pack("=BBH", AF_INET, 0, 0) + ct_tuple(1, "10.1.1.1", "10.1.1.2", 17, 1, 2)
    exchange(nf, "ct-error", nlmsg(1 << 8, flags, body))

    # Generic netlink: the family dump, and a request missing a required attribute
    # (netdev's DEV_GET without NETDEV_A_DEV_IFINDEX answers with NLMSGERR_ATTR_MISS_TYPE).
    g = sock(NETLINK_GENERIC)
    dump(g, "genl-family-dump", 0x10, struct.pack("=BBH", 3, 1, 0))
    fam = genl_family_id(g, b"netdev")
    if fam is not None:
        exchange(g, "error-miss-type", nlmsg(fam, NLM_F_REQUEST | NLM_F_ACK,
                                             struct.pack("=BBH", 1, 1, 0)))

    total = sum(n for _, n in WRITTEN)
    print("wrote %d files, %d bytes" % (len(WRITTEN), total))


if __name__ == "__main__":
    main()
