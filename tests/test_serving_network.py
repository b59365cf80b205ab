"""The local LLM server is reachable from this machine only: no socket of its whole process tree (the `deid serve`
driver, Ray's GCS, raylet and agents, the Serve controller, proxy and replicas) accepts traffic from the network,
but for the one Ray 2.60 binds to every interface whatever its options (deid/serving/app.py): each Serve
replica's inter-deployment gRPC server, which then must refuse a call without Ray's token. Probes go to
127.0.0.1 only."""
import ipaddress
from urllib.parse import urlsplit

import grpc
import psutil

WILDCARDS = ("0.0.0.0", "::")


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


def is_loopback(ip: str) -> bool:
    address = ipaddress.ip_address(ip)
    return (getattr(address, "ipv4_mapped", None) or address).is_loopback   # ::ffff:127.0.0.1 is loopback too


def open_to_network(proc: psutil.Process) -> list[tuple[str, int]]:
    """Listening TCP and unconnected UDP sockets of proc on an address other than loopback."""
    return [(c.laddr.ip, c.laddr.port) for c in proc.net_connections("inet")
            if (c.status == psutil.CONN_LISTEN or (c.type == 2 and not c.raddr))   # 2: SOCK_DGRAM
            and not is_loopback(c.laddr.ip)]


def refuses_a_call_without_token(port: int) -> bool:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            channel.unary_unary("/ray.serve.ASGIService/HandleRequest")(b"", timeout=10)
        except grpc.RpcError as error:
            return error.code() == grpc.StatusCode.UNAUTHENTICATED
    return False


def test_every_socket_of_the_local_server_is_on_loopback(served):
    tree = serve_tree(served)
    command = {p: " ".join(p.cmdline()) for p in tree}
    names = " ".join(command.values())
    for part in ("gcs_server", "raylet", "DashboardAgent", "RuntimeEnvAgent", "ServeController", "ProxyActor",
                 "ServeReplica"):
        assert part in names, f"{part} is not in the server's process tree"   # the tree is the whole server
    exposed = {p: sockets for p in tree if (sockets := open_to_network(p))}
    for replica in [p for p in tree if "ServeReplica" in command[p]]:
        sockets = exposed.pop(replica, [])
        assert len(sockets) == 1 and sockets[0][0] in WILDCARDS, f"replica {replica.pid}: {sockets} (expected " \
            "its inter-deployment gRPC server alone on every interface; if it is gone, drop the exception)"
        assert refuses_a_call_without_token(sockets[0][1])
    assert not exposed, f"listening outside loopback: {[(p.pid, command[p][:60], s) for p, s in exposed.items()]}"
