"""An engine as a detached process on another host, driven over SSH.

The remote twin of runtime/detached.py. Nothing of corral runs on the host: corral writes
a small POSIX shell wrapper into the run's folder there and starts it in a new session
(`setsid`), so the engine outlives the SSH command, corral, and a lost link. The folder
(`<hosts.NAME.run_dir>/<run>`, on the host) holds:

    run.sh      the wrapper: traps TERM so it survives to record the engine's exit status
    env         the deployment's environment (mode 600): secrets never reach a command line
    log         the engine's stdout and stderr, appended
    engine.pid  the engine's pid (the wrapper's child, same process group)
    exit        the engine's exit status, written by the wrapper when the engine ends

A `RemoteHandle` (host, folder, the wrapper's pid = the process group and session, and its
start time in clock ticks from /proc/PID/stat) finds the engine again after a corral
restart; a reused pid has another start time and is not taken for it.

`follow` streams the log from any byte offset (`tail -c +N -F --pid`): lines as they come,
then the exit status once the wrapper ends. When the SSH link drops instead, it reports the
link lost and the offset reached, so a later `follow` resumes without repeating a line.
What blocks: `launch`, `alive`, `stop` wait on one SSH command each (`stop` up to its grace
period); `follow` is an async iterator over an `ssh` subprocess.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shlex
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass

from corral.errors import EngineError, HostError
from corral.hosts.ssh import SshClient

WRAPPER = """\
trap : TERM INT HUP
set -a
[ -f ./env ] && . ./env
set +a
"$@" >> log 2>&1 < /dev/null &
child=$!
echo "$child" > engine.pid
while :; do
  wait "$child"; rc=$?
  kill -0 "$child" 2>/dev/null || break
done
echo "$rc" > exit
"""
# Field 22 of /proc/PID/stat is the start time in clock ticks since boot; the comm field
# before it is "(sh)" here, so splitting on spaces is safe.
START_TICKS = "cut -d' ' -f22 /proc/{pid}/stat 2>/dev/null"


@dataclass(frozen=True)
class RemoteHandle:
    """How to find a remote engine again: host, run folder there, group pid, start ticks."""

    host: str
    run_dir: str
    pid: int
    started: str

    def path(self, name: str) -> str:
        return f"{self.run_dir}/{name}"


def env_file(env: Mapping[str, str]) -> str:
    """`KEY='value'` lines the wrapper sources (with `set -a`, so the engine sees them)."""
    return "".join(f"{key}={shlex.quote(value)}\n" for key, value in env.items())


def launch(
    client: SshClient, run_dir: str, argv: Sequence[str], env: Mapping[str, str]
) -> RemoteHandle:
    """Start `argv` on the host in `run_dir`, detached; the handle to find it again."""
    folder = shlex.quote(run_dir)
    client.run(["sh", "-c", f"mkdir -p {folder} && cat > {folder}/run.sh"], stdin=WRAPPER)
    client.run(["sh", "-c", f"umask 077 && cat > {folder}/env"], stdin=env_file(env))
    started = client.run(
        [
            "sh",
            "-c",
            f"cd {folder} && : > log && rm -f exit engine.pid && "
            'setsid sh ./run.sh "$@" > /dev/null 2>&1 < /dev/null & '
            f'pid=$!; echo "$pid $({START_TICKS.format(pid="$pid")})"',
            "corral-launch",
            *argv,
        ]
    )
    pid, _, ticks = started.stdout.strip().partition(" ")
    if not pid.isdigit() or not ticks:
        raise EngineError(
            f"could not start {argv[0]} on host {client.target.host}: {started.stdout!r}",
            hint="check the command with `corral render NAME` and run it there by hand",
        )
    return RemoteHandle(client.target.host, run_dir, int(pid), ticks)


def alive(client: SshClient, handle: RemoteHandle) -> bool:
    """Whether the wrapper (and so the engine's group) still runs; HostError if unreachable."""
    ticks = START_TICKS.format(pid=handle.pid)
    result = client.run(["sh", "-c", f'test "$({ticks})" = {handle.started}'], check=False)
    return result.ok


def exit_code(client: SshClient, handle: RemoteHandle) -> int | None:
    """The engine's exit status once the wrapper recorded it; None while it runs (or unknown)."""
    text = client.run(["cat", handle.path("exit")], check=False).stdout.strip()
    return int(text) if text.lstrip("-").isdigit() else None


def engine_pid(client: SshClient, handle: RemoteHandle) -> int | None:
    text = client.run(["cat", handle.path("engine.pid")], check=False).stdout.strip()
    return int(text) if text.isdigit() else None


def stop(client: SshClient, handle: RemoteHandle, *, grace: float = 20.0) -> bool:
    """SIGTERM the group, SIGKILL after `grace` s (on the host, one command); False if gone."""
    if not alive(client, handle):
        return False
    ticks = START_TICKS.format(pid=handle.pid)
    rounds = max(1, int(grace * 5))
    script = (
        f"kill -TERM -{handle.pid} 2>/dev/null; i=0; "
        f'while [ "$({ticks})" = {handle.started} ] && [ $i -lt {rounds} ]; do '
        "sleep 0.2; i=$((i+1)); done; "
        f'[ "$({ticks})" = {handle.started} ] && kill -KILL -{handle.pid} 2>/dev/null; true'
    )
    client.run(["sh", "-c", script], timeout=grace + 30)
    return True


@dataclass
class FollowEnd:
    """How a `follow` ended: the engine's exit status, or the link lost at `offset`."""

    offset: int = 0
    exit_code: int | None = None
    link_lost: bool = False


class Follower:
    """The remote log from `offset`, line by line; `end` says how following stopped."""

    def __init__(self, client: SshClient, handle: RemoteHandle, offset: int = 0) -> None:
        self.client = client
        self.handle = handle
        self.end = FollowEnd(offset=offset)
        self._mark = f"@@corral-end-{secrets.token_hex(8)}"
        self._proc: asyncio.subprocess.Process | None = None

    def _command(self) -> list[str]:
        log = shlex.quote(self.handle.path("log"))
        exit_file = shlex.quote(self.handle.path("exit"))
        # After the group ends: a newline if the log's last line had none ("partial"),
        # then the end mark with the exit status.
        script = (
            f"tail -c +{self.end.offset + 1} -F --pid={self.handle.pid} {log} 2>/dev/null; "
            f'if [ -n "$(tail -c 1 {log})" ]; then echo; cut=1; else cut=0; fi; '
            f'echo "{self._mark} $cut $(cat {exit_file} 2>/dev/null || echo none)"'
        )
        return self.client.argv(["sh", "-c", script])

    async def lines(self) -> AsyncIterator[str]:
        """Each log line (newline kept) as it comes, until the group ends or the link drops.

        A partial line is yielded only once the engine's group ended (closed by the
        follower's newline, which the offset does not count) or not at all: after a
        dropped link it is read again, whole, by the next follow.
        """
        self._proc = await asyncio.create_subprocess_exec(
            *self._command(), stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE
        )
        try:
            async for line in self._read(self._proc):
                yield line
        finally:
            await self.close()

    async def _read(self, proc: asyncio.subprocess.Process) -> AsyncIterator[str]:
        assert proc.stdout is not None
        ended = False
        async for raw in proc.stdout:
            if raw.startswith(self._mark.encode()):
                ended = True
                cut, self.end.exit_code = _mark_fields(raw)
                self.end.offset -= cut
                break
            if not raw.endswith(b"\n"):
                break  # the link dropped mid-line
            self.end.offset += len(raw)
            yield raw.decode(errors="replace")
        self.end.link_lost = not ended

    async def close(self) -> None:
        """Stop following (the engine keeps running); reaps the local `ssh`."""
        if self._proc is None:
            return
        if self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.kill()
        await self._proc.wait()
        self._proc = None


def _mark_fields(mark_line: bytes) -> tuple[int, int | None]:
    """(bytes the follower added to close a partial line, the exit status or None)."""
    _, cut, status = mark_line.decode(errors="replace").split()
    return int(cut), int(status) if status.lstrip("-").isdigit() else None


def require_launchable(client: SshClient, executable: str) -> None:
    """HostError naming the host when `executable` isn't on the SSH session's PATH there."""
    found = client.run(["sh", "-c", f"command -v {shlex.quote(executable)}"], check=False)
    if not found.ok:
        raise HostError(
            client.target.host,
            f"`{executable}` is not on the PATH of an SSH session there",
            hint="install the engine on that host (or give the command's full path in the "
            "recipe); `corral hosts check` shows what each host has",
        )
