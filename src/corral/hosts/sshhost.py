"""`SshHost`: another machine behind the runtimes' host seam, every call a command over SSH.

The runtimes (supervised or detached process, docker container) ask their host to run,
spawn, watch, signal and follow; `SshHost` answers the same questions as the local host
does, for a machine reached over one multiplexed SSH connection (decision 0013). Nothing of
corral runs there: the commands are POSIX shell, `ps`, `kill`, `tail` and /proc.

Spawning writes a small shell wrapper into the run's folder on the host and starts it in a
new session (`setsid`), so the engine outlives the SSH command, corral and a lost link.
The run's folder is `<hosts.NAME.run_dir>/<run>` there (default `.cache/corral/runs` under
the login's home); it holds

    run.sh   the wrapper: traps TERM so it lives to record the engine's exit status
    env      the deployment's environment, mode 600: secrets never reach a command line
    <log>    the engine's stdout and stderr

and the exit status goes to `<run_dir>/exits/<wrapper pid>`. The wrapper's pid is the
process group (and session) that `group` and `signal_group` address; its start time, read
from /proc as psutil computes it (boot time + start ticks / CLK_TCK), tells a reused pid
from ours.

Engines bind the host's loopback; `reach(port)` forwards a local port to it over the SSH
connection (decision 0014) and keeps that local port across reconnections, so a replica's
URL never changes. While the link is down the local port is closed: a request fails at
once (connection refused) instead of hanging. `relink()` brings the connection and its
forwards back.

What raises: a call that cannot reach the host raises `HostUnreachableError` (never a
"not alive" answer: an unreachable host says nothing about its engines). All calls block;
async code runs them in a thread.
"""

from __future__ import annotations

import os
import random
import select
import shlex
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path, PurePosixPath

from corral.errors import EngineError, HostError
from corral.hosts.ssh import SshClient
from corral.runtime.host import Host, Spawned
from corral.runtime.ports import free_port

PID_TIME_SLACK = 2.0  # seconds, as runtime/detached.py
CHECK_EVERY = 0.5  # seconds between keep_going() checks while following
TCP_LISTEN = "0A"  # /proc/net/tcp state of a listening socket
WRAPPER = """\
log=$1; exits=$2; shift 2
trap : TERM INT HUP
set -a
[ -f ./env ] && . ./env
set +a
"$@" >> "$log" 2>&1 < /dev/null &
child=$!
while :; do
  wait "$child"; rc=$?
  kill -0 "$child" 2>/dev/null || break
done
mkdir -p "$exits" && echo "$rc" > "$exits/$$"
"""
CREATE_TIME = (
    "t=$(cut -d' ' -f3,22 /proc/{pid}/stat 2>/dev/null) && "
    "echo $t $(awk '/^btime/ {{print $2}}' /proc/stat) $(getconf CLK_TCK)"
)


def env_lines(env: Mapping[str, str]) -> str:
    """`KEY='value'` lines a shell sources with `set -a`, so the engine sees them."""
    return "".join(f"{key}={shlex.quote(value)}\n" for key, value in env.items())


def create_time(stat_line: str) -> tuple[str, float] | None:
    """'S 152219 1764625000 100' (state, start ticks, btime, CLK_TCK) → (state, epoch)."""
    parts = stat_line.split()
    if len(parts) != 4 or not all(p.isdigit() for p in parts[1:]):
        return None
    state, ticks, boot, hertz = parts[0], int(parts[1]), int(parts[2]), int(parts[3])
    return state, boot + ticks / hertz


def listening_ports(proc_net_tcp: str) -> set[int]:
    """Ports with a listening socket, from /proc/net/tcp and tcp6 text."""
    ports = set()
    for line in proc_net_tcp.splitlines()[1:]:
        fields = line.split()
        if len(fields) > 3 and fields[3] == TCP_LISTEN and ":" in fields[1]:
            ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def group_of(ps_text: str, pgid: int) -> list[int]:
    """Live (non-zombie) pids of group `pgid`, from `ps -e -o pid=,pgid=,stat=`."""
    found = []
    for line in ps_text.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] == str(pgid) and not parts[2].startswith("Z"):
            found.append(int(parts[0]))
    return found


class SshHost:
    """A fleet host reached over SSH, answering what the runtimes ask of a machine."""

    def __init__(self, client: SshClient, run_dir: str = ".cache/corral/runs") -> None:
        self.client = client
        self.name = client.target.host
        self.run_dir = run_dir
        self._forwards: dict[int, int] = {}  # remote port → local port

    def remote_path(self, log_path: Path) -> str:
        """Where a run's log lives on the host: `<run_dir>/<log's stem>/<log's name>`, so
        each run has its own folder (wrapper, env file) there."""
        return str(PurePosixPath(self.run_dir) / log_path.stem / log_path.name)

    def _sh(self, script: str, *args: str, timeout: float = 30.0, stdin: str | None = None) -> str:
        return self.client.run(
            ["sh", "-c", script, "corral", *args], timeout=timeout, stdin=stdin, check=False
        ).stdout

    def run(
        self, argv: Sequence[str], *, timeout: float, env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run `argv` there; `env` travels on stdin (not on a command line) and is exported."""
        script = 'set -a; eval "$(cat)"; set +a; exec "$@"'
        done = self.client.run(
            ["sh", "-c", script, "corral", *argv],
            timeout=timeout,
            stdin=env_lines(env or {}),
            check=False,
        )
        return subprocess.CompletedProcess(list(argv), done.returncode, done.stdout, done.stderr)

    def stream(self, argv: Sequence[str]) -> subprocess.Popen[str]:
        self.client.connect()
        return subprocess.Popen(
            self.client.argv(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def spawn(
        self, argv: Sequence[str], env: Mapping[str, str], log_path: Path, *, outlive: bool
    ) -> Spawned:
        """Start `argv` there in a new session, output to the run's log; `outlive` is
        always true in effect: nothing on the host ties an engine to corral's life."""
        del outlive
        log = self.remote_path(log_path)
        folder = shlex.quote(str(PurePosixPath(log).parent))
        self._sh(f"mkdir -p {folder} && cat > {folder}/run.sh", stdin=WRAPPER)
        self._sh(f"umask 077 && cat > {folder}/env", stdin=env_lines(env))
        exits = shlex.quote(self._exits())
        # The wrapper runs in the run's folder: give it the exits folder as an absolute path.
        launch = (
            f"mkdir -p {exits} && e=$(cd {exits} && pwd) && cd {folder} && "
            'log=$1; shift; setsid sh ./run.sh "$log" "$e" "$@" > /dev/null 2>&1 < /dev/null & '
            'pid=$!; echo "$pid"'
        )
        out = self._sh(launch, PurePosixPath(log).name, *argv).strip()
        if not out.isdigit():
            raise EngineError(
                f"could not start {argv[0]} on host {self.name}: {out!r}",
                hint="`corral render NAME` shows the command; try it there by hand",
            )
        pid = int(out)
        return Spawned(pid, self._created(pid))

    def _exits(self) -> str:
        return str(PurePosixPath(self.run_dir) / "exits")

    def _created(self, pid: int) -> float | None:
        found = create_time(self._sh(CREATE_TIME.format(pid=pid)).strip())
        return found[1] if found else None

    def alive(self, pid: int, started_at: float | None) -> bool:
        found = create_time(self._sh(CREATE_TIME.format(pid=pid)).strip())
        if found is None or found[0] == "Z":
            return False
        return started_at is None or abs(found[1] - started_at) < PID_TIME_SLACK

    def exit_code(self, pid: int) -> int | None:
        text = self._sh(f"cat {shlex.quote(self._exits())}/{pid} 2>/dev/null").strip()
        return int(text) if text.lstrip("-").isdigit() else None

    def group(self, pgid: int) -> list[int]:
        return group_of(self._sh("ps -e -o pid=,pgid=,stat="), pgid)

    def signal_group(self, pgid: int, sig: signal.Signals) -> None:
        self._sh(f"kill -{sig.name.removeprefix('SIG')} -{pgid} 2>/dev/null; true")

    def port_in_use(self, address: str, port: int) -> bool:
        """Whether anything listens on `port` there (on any address: the safe answer)."""
        del address
        return port in listening_ports(self._sh("cat /proc/net/tcp /proc/net/tcp6 2>/dev/null"))

    def free_port(self) -> int:
        taken = listening_ports(self._sh("cat /proc/net/tcp /proc/net/tcp6 2>/dev/null"))
        while True:
            port = random.randrange(20000, 60000)  # noqa: S311  (a port, not a secret)
            if port not in taken:
                return port

    def follow(self, path: Path, keep_going: Callable[[], bool]) -> Iterator[str]:
        """The run's log from its start, then as it grows, while `keep_going()`.

        A dropped link does not end it: following resumes at the byte it had reached once
        the host answers again, so no line is lost or repeated.
        """
        offset = 0
        log = self.remote_path(path)
        while True:
            follower = self.stream(["tail", "-c", f"+{offset + 1}", "-F", log])
            try:
                for line in _pipe_lines(follower, keep_going):
                    offset += len(line.encode())
                    yield line
            finally:
                _end(follower)
            if not _still(keep_going):
                return
            time.sleep(1.0)  # the link dropped: try again

    def reach(self, port: int) -> int:
        """A local port that reaches 127.0.0.1:`port` on the host (an SSH forward)."""
        if port not in self._forwards:
            local = free_port()
            self.client.forward(local, port)
            self._forwards[port] = local
        return self._forwards[port]

    def unreach(self, port: int) -> None:
        local = self._forwards.pop(port, None)
        if local is not None:
            self.client.cancel_forward(local, port)

    def link_up(self) -> bool:
        return self.client.alive()

    def relink(self) -> bool:
        """Reconnect and restore every forward on its old local port; False if still down."""
        if self.client.alive():
            return True
        try:
            self.client.connect()
            for remote, local in self._forwards.items():
                self.client.forward(local, remote)
        except HostError:
            return False
        return True

    def close(self) -> None:
        self._forwards.clear()
        self.client.close()


def _still(keep_going: Callable[[], bool]) -> bool:
    """keep_going(), with an unreachable host counted as "yes, wait for it"."""
    try:
        return keep_going()
    except HostError:
        return True


def _pipe_lines(proc: subprocess.Popen[str], keep_going: Callable[[], bool]) -> Iterator[str]:
    """Whole lines from `proc`'s stdout until it ends or keep_going() turns False."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    pending, checked = b"", time.monotonic()
    while True:
        ready, _, _ = select.select([fd], [], [], CHECK_EVERY)
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                return  # ssh ended: the link dropped
            pending += chunk
            *whole, pending = pending.split(b"\n")
            yield from (line.decode(errors="replace") + "\n" for line in whole)
        if time.monotonic() - checked >= CHECK_EVERY:
            checked = time.monotonic()
            if not _still(keep_going):
                yield from _drain(fd, pending)
                return


def _drain(fd: int, pending: bytes, quiet: float = 0.3) -> Iterator[str]:
    """The whole lines still in flight when following stops (the engine's last words)."""
    while select.select([fd], [], [], quiet)[0]:
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        pending += chunk
    *whole, _ = pending.split(b"\n")
    yield from (line.decode(errors="replace") + "\n" for line in whole)


def _end(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


def _conforms(host: SshHost) -> Host:
    return host  # mypy checks that SshHost is a runtime Host
