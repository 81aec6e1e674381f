"""Reaching another host: the OpenSSH client, one multiplexed master connection per host.

corral runs nothing of its own on other machines; every remote step is a command sent over
SSH (decision 0013: OpenSSH with ControlMaster rather than asyncssh). Settings are explicit
and strict, whatever the user's ~/.ssh/config says (`-F none`):

  * key authentication only (`BatchMode=yes`: no password or passphrase prompt can hang us);
  * host keys checked against the host's `known_hosts` file (`StrictHostKeyChecking=yes`):
    an unknown or changed key is refused with a `HostKeyError` that says what to do;
  * one master connection per host (`ControlMaster`, socket in corral's control dir), which
    later commands and port forwards reuse, so a command costs a channel, not a handshake;
  * `ServerAliveInterval` on the master, so a dead link is noticed within seconds and the
    master exits (with its forwards), instead of hanging on TCP's retransmission timeout.

What blocks: `run` waits for the remote command (bounded by `timeout`); `connect` waits for
the handshake (bounded by the host's `connect_timeout`). Nothing here is async; callers on
an event loop use `asyncio.to_thread`. Two callers may race to start the master: OpenSSH
lets only one bind the control socket, and the loser's command still runs over a direct
connection.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from corral.config import CorralConfig, Host
from corral.errors import HostAuthError, HostError, HostKeyError, HostUnreachableError

SSH_FAILED = 255  # ssh's own exit status; anything else is the remote command's
ALIVE_INTERVAL = 1  # seconds between keep-alive probes on the master
ALIVE_COUNT = 2  # unanswered probes before the master gives up: a dead link shows in ~2 s
# A Unix socket path must fit sockaddr_un (108 bytes); keep the control path well inside.
MAX_SOCKET_PATH = 104
SOCKET_NAME_LENGTH = 16


@dataclass(frozen=True)
class SshTarget:
    """Where and how to log in to one host, from `hosts.<name>` in corral.yaml."""

    host: str
    address: str
    port: int = 22
    user: str | None = None
    key: Path | None = None
    known_hosts: Path = Path("~/.ssh/known_hosts")
    connect_timeout: float = 5.0

    @classmethod
    def from_config(cls, name: str, host: Host) -> SshTarget:
        return cls(
            host=name,
            address=host.address,
            port=host.ssh.port,
            user=host.ssh.user,
            key=host.ssh.key.expanduser() if host.ssh.key else None,
            known_hosts=host.ssh.known_hosts.expanduser(),
            connect_timeout=host.ssh.connect_timeout,
        )

    @property
    def destination(self) -> str:
        return f"{self.user}@{self.address}" if self.user else self.address

    def describe(self) -> str:
        return f"{self.destination} port {self.port}"


@dataclass(frozen=True)
class RemoteResult:
    """A finished remote command: its exit status and output, and how long it took."""

    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def control_dir(home: Path) -> Path:
    """corral's directory for master sockets: `<home>/ssh`, or /tmp when that path is long."""
    return _short_enough(home / "ssh")


def _short_enough(folder: Path) -> Path:
    # ssh binds "<ControlPath>.<16 random characters>" first, then renames it.
    if len(str(folder)) + 1 + SOCKET_NAME_LENGTH + 17 <= MAX_SOCKET_PATH:
        return folder
    return Path(tempfile.gettempdir()) / f"corral-ssh-{os.getuid()}"


def classify(target: SshTarget, stderr: str) -> HostError:
    """The HostError that ssh's own failure text (exit status 255) stands for."""
    text = stderr.strip()
    last = text.splitlines()[-1] if text else "ssh failed without a message"
    if "REMOTE HOST IDENTIFICATION HAS CHANGED" in text:
        sent = re.search(r"key sent by the remote host is\s+(\S+?)\.?$", text, re.MULTILINE)
        return HostKeyError(
            target.host,
            f"the key of {target.address} differs from the one in {target.known_hosts} "
            f"(now {sent.group(1) if sent else 'unknown'}): corral refuses to connect",
            hint="if the host was reinstalled, confirm its new key fingerprint with its "
            f"owner, then `ssh-keygen -R {_known_name(target)} -f {target.known_hosts}` and "
            "add the new key; otherwise someone may be intercepting the connection",
        )
    if "Host key verification failed" in text or "host key is known" in text:
        return HostKeyError(
            target.host,
            f"{target.address} is not in {target.known_hosts} (unknown host key)",
            hint=f"check the fingerprint (`ssh-keyscan -p {target.port} {target.address} | "
            f"ssh-keygen -lf -`) against the host's own, then append that ssh-keyscan "
            f"output to {target.known_hosts}",
        )
    if "Permission denied" in text or "Too many authentication failures" in text:
        key = target.key or "your default key"
        return HostAuthError(
            target.host,
            f"{target.describe()} refused the key ({last})",
            hint=f"add the public half of {key} to ~{target.user or ''}/.ssh/authorized_keys "
            "on that host, or set hosts.<name>.ssh.key / ssh.user in corral.yaml",
        )
    return HostUnreachableError(
        target.host,
        f"cannot reach {target.describe()} over SSH: {last}",
        hint="check that the host is up, its address and port in corral.yaml, and that "
        "sshd runs there (`ssh -p PORT USER@ADDRESS true` from this machine)",
    )


def _known_name(target: SshTarget) -> str:
    return target.address if target.port == 22 else f"[{target.address}]:{target.port}"


class SshClient:
    """Commands, streams and port forwards to one host over one multiplexed connection."""

    def __init__(
        self, target: SshTarget, control_dir: Path, *, persist: int = 600, ssh: str = "ssh"
    ) -> None:
        self.target = target
        self.control_dir = control_dir
        self.persist = persist
        self.ssh = ssh

    @property
    def control_path(self) -> Path:
        digest = hashlib.sha1(  # noqa: S324  (a file name, not a security boundary)
            f"{self.target.destination}:{self.target.port}".encode()
        ).hexdigest()
        return _short_enough(self.control_dir) / digest[:SOCKET_NAME_LENGTH]

    def options(self) -> list[str]:
        """The ssh options every call shares (identity, host-key policy, control socket)."""
        t = self.target
        opts = ["-F", "none", "-p", str(t.port), "-o", "BatchMode=yes"]
        opts += ["-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={t.known_hosts}"]
        opts += ["-o", "GlobalKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR"]
        opts += ["-o", f"ConnectTimeout={max(1, round(t.connect_timeout))}"]
        opts += ["-o", f"ServerAliveInterval={ALIVE_INTERVAL}"]
        opts += ["-o", f"ServerAliveCountMax={ALIVE_COUNT}"]
        opts += ["-o", f"ControlPath={self.control_path}"]
        if t.key is not None:
            opts += ["-i", str(t.key), "-o", "IdentitiesOnly=yes"]
        if t.user:
            opts += ["-l", t.user]
        return opts

    def argv(self, command: Sequence[str]) -> list[str]:
        """The local argv that runs `command` (an argv, quoted for the remote shell) there."""
        remote = shlex.join(command)
        return [self.ssh, *self.options(), "-o", "ControlMaster=no", self.target.address, remote]

    def alive(self) -> bool:
        """Whether the master connection is up (`ssh -O check`)."""
        if not self.control_path.exists():
            return False
        done = subprocess.run(
            [self.ssh, *self.options(), "-O", "check", self.target.address],
            capture_output=True,
            timeout=10,
            check=False,
        )
        return done.returncode == 0

    def master_pid(self) -> int | None:
        """The master connection's process id, from `ssh -O check` ("Master running (pid=N)")."""
        if not self.control_path.exists():
            return None
        done = subprocess.run(
            [self.ssh, *self.options(), "-O", "check", self.target.address],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        found = re.search(r"pid=(\d+)", done.stderr)
        return int(found.group(1)) if done.returncode == 0 and found else None

    def connect(self) -> float:
        """Start the master connection if it isn't up; the seconds the handshake took."""
        if self.alive():
            return 0.0
        self.control_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        start = time.perf_counter()
        master = [
            *self.options(),
            "-o",
            "ControlMaster=yes",
            "-o",
            f"ControlPersist={self.persist}",
        ]
        # The backgrounded master keeps whatever stderr it was given open: a file, not a
        # pipe, or reading the pipe would wait for the master to exit.
        with tempfile.TemporaryFile() as err:
            try:
                code = subprocess.run(
                    [self.ssh, *master, "-f", "-N", self.target.address],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=err,
                    timeout=self.target.connect_timeout * 3 + 5,
                    check=False,
                ).returncode
            except subprocess.TimeoutExpired:
                raise self._timeout("connecting") from None
            err.seek(0)
            message = err.read().decode(errors="replace")
        if code != 0:
            raise classify(self.target, message)
        return time.perf_counter() - start

    def run(
        self,
        command: Sequence[str],
        *,
        timeout: float = 30.0,
        stdin: str | None = None,
        check: bool = True,
    ) -> RemoteResult:
        """Run `command` there; HostError when ssh itself fails, or (with `check`) on rc≠0.

        Uses the master when it is up; without one, ssh connects directly (slower, same
        result), so a command never waits on a liveness check first.
        """
        if not self.control_path.exists():
            self.connect()
        start = time.perf_counter()
        try:
            done = subprocess.run(
                self.argv(command),
                input=stdin,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise self._timeout(shlex.join(command)) from None
        result = RemoteResult(
            done.returncode, done.stdout, done.stderr, time.perf_counter() - start
        )
        if result.returncode == SSH_FAILED and not self.alive():
            raise classify(self.target, result.stderr)
        if check and not result.ok:
            raise HostError(
                self.target.host,
                f"`{shlex.join(command)}` exited {result.returncode}: "
                f"{result.stderr.strip()[-500:] or result.stdout.strip()[-500:]}",
            )
        return result

    def popen(self, command: Sequence[str]) -> subprocess.Popen[bytes]:
        """Start `command` there with its stdout (and stderr) piped back, e.g. a log follower."""
        self.connect()
        return subprocess.Popen(
            self.argv(command),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )

    def forward(self, local_port: int, remote_port: int, remote_host: str = "127.0.0.1") -> None:
        """Listen on 127.0.0.1:`local_port` here, connecting to remote_host:remote_port there."""
        self._forward("forward", local_port, remote_port, remote_host)

    def cancel_forward(
        self, local_port: int, remote_port: int, remote_host: str = "127.0.0.1"
    ) -> None:
        if self.alive():
            self._forward("cancel", local_port, remote_port, remote_host)

    def _forward(self, op: str, local_port: int, remote_port: int, remote_host: str) -> None:
        self.connect()
        spec = f"127.0.0.1:{local_port}:{remote_host}:{remote_port}"
        done = subprocess.run(
            [self.ssh, *self.options(), "-O", op, "-L", spec, self.target.address],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        if done.returncode != 0:
            raise HostError(
                self.target.host,
                f"cannot {op} port 127.0.0.1:{local_port} → {remote_host}:{remote_port} "
                f"there: {done.stderr.strip()}",
                hint="another program may hold the local port; corral picks another on retry",
            )

    def close(self) -> None:
        """End the master connection (and with it every forward and multiplexed session)."""
        if self.control_path.exists():
            subprocess.run(
                [self.ssh, *self.options(), "-O", "exit", self.target.address],
                capture_output=True,
                timeout=10,
                check=False,
            )

    def _timeout(self, what: str) -> HostUnreachableError:
        return HostUnreachableError(
            self.target.host,
            f"{self.target.describe()} did not answer in time ({what})",
            hint="the host may be down or the network partitioned; check `corral hosts check`",
        )


def client_for(config: CorralConfig, name: str, home: Path) -> SshClient:
    """The SSH client for host `name` of `config`, its master socket under corral's home."""
    return SshClient(SshTarget.from_config(name, config.host(name)), control_dir(home))
