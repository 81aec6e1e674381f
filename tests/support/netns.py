"""Other hosts for tests: network namespaces on this machine, each with a real OpenSSH server.

    fleet = create_fleet(["pegasus", "stella"], workdir)
    ...                      # ssh root@fleet.hosts["pegasus"].address works, key-checked
    destroy_fleet(fleet)

Layout: a bridge `crl-br0` in the root namespace holds 10.77.0.1/24; host number i is the
namespace `crl-<name>` with one veth pair (`crl-<i>-r` on the bridge, `eth0` inside) and the
address 10.77.0.(10+i). Hosts reach each other over the bridge and the root namespace (where
the tests' corral runs) reaches them all; nothing is routed beyond. `partition(host)` sets the
root side of the host's veth down, `heal(host)` up again.

Each host runs `/usr/sbin/sshd -D` inside its namespace with a host key and an authorized
client key generated here; a session there gets `PATH=<host bin>:...` (sshd's SetEnv), so
a test can put stand-ins (nvidia-smi, docker) on one host only. The filesystem and the
process-id space are shared with this machine, as an NFS-mounted store and `ps` are.

Everything made here is named `crl-*`; `clean_leftovers()` removes what a killed session left
(processes inside those namespaces by pid, then the namespaces, the veths and the bridge).
Only one session at a time owns the fleet: `create_fleet` holds /tmp/corral-netns.lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

PREFIX = "crl-"
BRIDGE = "crl-br0"
SUBNET = "10.77.0"
ROOT_ADDRESS = f"{SUBNET}.1"
LOCK = Path("/tmp/corral-netns.lock")
SSHD = Path("/usr/sbin/sshd")
STD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass
class NetnsHost:
    name: str
    index: int
    workdir: Path
    sshd: subprocess.Popen[bytes] | None = None

    @property
    def namespace(self) -> str:
        return f"{PREFIX}{self.name}"

    @property
    def address(self) -> str:
        return f"{SUBNET}.{10 + self.index}"

    @property
    def root_link(self) -> str:
        return f"{PREFIX}{self.index}-r"

    @property
    def bin_dir(self) -> Path:
        """On PATH first for every SSH session on this host: put stand-ins here."""
        return self.workdir / "bin"

    def exec_argv(self, argv: list[str]) -> list[str]:
        """`argv` run inside this host's network namespace."""
        return ["ip", "netns", "exec", self.namespace, *argv]

    def pids(self) -> list[int]:
        """Every process whose network namespace is this host's."""
        out = _run(["ip", "netns", "pids", self.namespace], check=False).stdout
        return [int(p) for p in out.split()]


@dataclass
class NetnsFleet:
    workdir: Path
    client_key: Path
    known_hosts: Path
    hosts: dict[str, NetnsHost] = field(default_factory=dict)
    lock: IO[str] | None = None

    def partition(self, name: str) -> None:
        _run(["ip", "link", "set", self.hosts[name].root_link, "down"])

    def heal(self, name: str) -> None:
        _run(["ip", "link", "set", self.hosts[name].root_link, "up"])


def _run(argv: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=check, timeout=30)


def available() -> str | None:
    """Why namespace hosts can't be made here, or None when they can."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if not SSHD.exists():
        return "no OpenSSH server (apt-get install openssh-server; .ci/run does)"
    return None


def _our_namespaces() -> list[str]:
    out = _run(["ip", "netns", "list"], check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(PREFIX)]


def _our_links() -> list[str]:
    out = _run(["ip", "-o", "link", "show"], check=False).stdout
    names = [line.split(":")[1].strip().split("@")[0] for line in out.splitlines()]
    return [name for name in names if name.startswith(PREFIX)]


def clean_leftovers() -> None:
    """Remove every `crl-*` namespace (its processes first, by pid), veth and the bridge."""
    for namespace in _our_namespaces():
        pids = _run(["ip", "netns", "pids", namespace], check=False).stdout.split()
        for pid in pids:
            _kill(int(pid), signal.SIGKILL)
        _run(["ip", "netns", "del", namespace], check=False)
    for link in _our_links():
        _run(["ip", "link", "del", link], check=False)


def _kill(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _keygen(path: Path, comment: str) -> None:
    path.unlink(missing_ok=True)
    _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)])


def _make_bridge() -> None:
    _run(["ip", "link", "add", BRIDGE, "type", "bridge"])
    _run(["ip", "addr", "add", f"{ROOT_ADDRESS}/24", "dev", BRIDGE])
    _run(["ip", "link", "set", BRIDGE, "up"])


def _make_namespace(host: NetnsHost) -> None:
    inner = f"{PREFIX}{host.index}-h"
    _run(["ip", "netns", "add", host.namespace])
    _run(["ip", "link", "add", host.root_link, "type", "veth", "peer", "name", inner])
    _run(["ip", "link", "set", host.root_link, "master", BRIDGE, "up"])
    _run(["ip", "link", "set", inner, "netns", host.namespace])
    inside = ["ip", "netns", "exec", host.namespace]
    _run([*inside, "ip", "link", "set", inner, "name", "eth0"])
    _run([*inside, "ip", "addr", "add", f"{host.address}/24", "dev", "eth0"])
    _run([*inside, "ip", "link", "set", "eth0", "up"])
    _run([*inside, "ip", "link", "set", "lo", "up"])


def _sshd_config(host: NetnsHost, authorized: Path) -> Path:
    config = host.workdir / "sshd_config"
    config.write_text(
        f"ListenAddress {host.address}\n"
        "Port 22\n"
        f"HostKey {host.workdir / 'host_key'}\n"
        f"AuthorizedKeysFile {authorized}\n"
        f"PidFile {host.workdir / 'sshd.pid'}\n"
        "PermitRootLogin prohibit-password\n"
        "PasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\n"
        "UsePAM no\n"
        "StrictModes no\n"
        "AllowTcpForwarding yes\n"
        "MaxSessions 64\n"
        "MaxStartups 64:30:128\n"
        "ClientAliveInterval 2\n"
        "ClientAliveCountMax 3\n"
        # SHLVL>1 keeps bash from sourcing ~/.bashrc for ssh commands (bash's
        # run_startup_files): this machine's root .bashrc runs pyenv init, ~0.5 s a command.
        f"SetEnv PATH={host.bin_dir}:{STD_PATH} CORRAL_TEST_HOST={host.name} SHLVL=2\n"
    )
    return config


def _start_sshd(host: NetnsHost, authorized: Path) -> None:
    host.workdir.mkdir(parents=True, exist_ok=True)
    host.bin_dir.mkdir(exist_ok=True)
    _keygen(host.workdir / "host_key", f"host-{host.name}")
    config = _sshd_config(host, authorized)
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation dir
    log = host.workdir / "sshd.log"
    host.sshd = subprocess.Popen(
        host.exec_argv([str(SSHD), "-D", "-e", "-f", str(config), "-E", str(log)]),
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    _wait_listening(host)


def _wait_listening(host: NetnsHost, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host.address, 22), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    log = (host.workdir / "sshd.log").read_text(errors="replace")
    raise RuntimeError(f"sshd on {host.name} did not listen within {timeout}s:\n{log}")


def known_hosts_line(host: NetnsHost) -> str:
    key = (host.workdir / "host_key.pub").read_text().split()
    return f"{host.address} {key[0]} {key[1]}\n"


def create_fleet(names: list[str], workdir: Path) -> NetnsFleet:
    """Namespace hosts named `names`, each with sshd up and its key in `known_hosts`."""
    lock = LOCK.open("w")
    fcntl.flock(lock, fcntl.LOCK_EX)
    clean_leftovers()
    workdir.mkdir(parents=True, exist_ok=True)
    fleet = NetnsFleet(workdir, workdir / "client_key", workdir / "known_hosts", lock=lock)
    try:
        _build(fleet, names)
    except BaseException:
        destroy_fleet(fleet)
        raise
    return fleet


def _build(fleet: NetnsFleet, names: list[str]) -> None:
    _keygen(fleet.client_key, "corral-tests")
    authorized = fleet.workdir / "authorized_keys"
    shutil.copy(fleet.client_key.with_suffix(".pub"), authorized)
    _make_bridge()
    for index, name in enumerate(names, start=1):
        host = NetnsHost(name, index, fleet.workdir / name)
        fleet.hosts[name] = host
        _make_namespace(host)
        _start_sshd(host, authorized)
    fleet.known_hosts.write_text("".join(known_hosts_line(h) for h in fleet.hosts.values()))


def stop_host_processes(host: NetnsHost) -> None:
    """End every process in the host's namespace (sshd, sessions, engines), by pid."""
    for pid in host.pids():
        _kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 5
    while host.pids() and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in host.pids():
        _kill(pid, signal.SIGKILL)
    if host.sshd is not None:
        host.sshd.wait(timeout=5)  # reap it (`ip netns exec` ends when sshd does)


def destroy_fleet(fleet: NetnsFleet) -> None:
    """Stop every process in the fleet's namespaces and remove all it made; release the lock."""
    try:
        for host in fleet.hosts.values():
            stop_host_processes(host)
        clean_leftovers()
    finally:
        if fleet.lock is not None:
            fcntl.flock(fleet.lock, fcntl.LOCK_UN)
            fleet.lock.close()
