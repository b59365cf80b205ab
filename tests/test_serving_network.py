"""The local LLM server is reachable from this machine only: no socket of its whole process tree (the `deid serve`
driver, Ray's GCS, raylet and agents, the Serve controller, proxy and replicas) accepts traffic from the network.
Ray's processes are an unauthenticated cluster; on a hospital workstation they must not be one on the LAN."""
import ipaddress
from urllib.parse import urlsplit

import psutil


def listener_of(port: int) -> psutil.Process:
    for p in psutil.process_iter():
        try:
            if any(c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in p.net_connections("tcp")):
                return p
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    raise AssertionError(f"nothing listens on port {port}")


def serve_tree(url: str) -> list[psutil.Process]:
    """The `deid serve` process that answers at url (an ancestor of its HTTP proxy), with all its descendants."""
    proc = listener_of(urlsplit(url).port)
    while proc is not None and "deid.cli serve" not in " ".join(proc.cmdline()):
        proc = proc.parent()
    assert proc is not None, "the HTTP proxy does not descend from a `deid serve` process"
    return [proc, *proc.children(recursive=True)]


def open_to_network(proc: psutil.Process) -> list[str]:
    """Listening TCP and unconnected UDP sockets of proc on an address other than loopback."""
    found = []
    for c in proc.net_connections("inet"):
        accepts = c.status == psutil.CONN_LISTEN or (c.type == 2 and not c.raddr)   # 2: SOCK_DGRAM
        if accepts and not ipaddress.ip_address(c.laddr.ip).is_loopback:
            found.append(f"{c.laddr.ip}:{c.laddr.port}")
    return found


def test_every_socket_of_the_local_server_is_on_loopback(served):
    tree = serve_tree(served)
    names = " ".join(" ".join(p.cmdline()) for p in tree)
    for part in ("gcs_server", "raylet", "ServeController", "ProxyActor", "ServeReplica"):
        assert part in names, f"{part} is not in the server's process tree"   # the tree is the whole server
    exposed = {f"{p.pid} {p.name()}": s for p in tree if (s := open_to_network(p))}
    assert not exposed, f"listening outside loopback: {exposed}"
