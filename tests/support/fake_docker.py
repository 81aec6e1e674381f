"""A stand-in `docker` executable for tests: records its argv, keeps container state in
files, and replays a recorded engine log for `docker logs`.

Environment: FAKE_DOCKER_DIR (state: argv.jsonl, containers/NAME.json) and FAKE_DOCKER_LOG
(the log `docker logs` prints). Implements what corral uses: run -d, inspect --format,
logs [-f], stop, rm -f. `logs -f` prints the log, then waits (at most 30 s) until the
container is stopped, as the real command does.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path

STATE = Path(os.environ["FAKE_DOCKER_DIR"])
CONTAINERS = STATE / "containers"


def _load(name: str) -> dict[str, object] | None:
    path = CONTAINERS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _save(name: str, data: dict[str, object]) -> None:
    CONTAINERS.mkdir(parents=True, exist_ok=True)
    (CONTAINERS / f"{name}.json").write_text(json.dumps(data))


def _no_such(name: str) -> int:
    print(f"Error response from daemon: No such container: {name}", file=sys.stderr)
    return 1


def run(args: list[str]) -> int:
    name = args[args.index("--name") + 1]
    if _load(name) is not None:
        print(
            f'docker: Error response from daemon: Conflict. The container name "/{name}" '
            "is already in use.",
            file=sys.stderr,
        )
        return 125
    cid = hashlib.sha256(f"{name}{time.time()}".encode()).hexdigest()
    _save(name, {"id": cid, "status": "running", "exit_code": 0, "argv": args})
    print(cid)
    return 0


def inspect(args: list[str]) -> int:
    data = _load(args[-1])
    if data is None:
        return _no_such(args[-1])
    print(f"{data['id']} {data['status']} {data['exit_code']}")
    return 0


def logs(args: list[str]) -> int:
    name = args[-1]
    if _load(name) is None:
        return _no_such(name)
    with open(os.environ["FAKE_DOCKER_LOG"], encoding="utf-8", newline="") as handle:
        for line in handle:
            sys.stdout.write(line)
    sys.stdout.flush()
    deadline = time.monotonic() + 30
    while "-f" in args and time.monotonic() < deadline:
        data = _load(name)
        if data is None or data["status"] != "running":
            break
        time.sleep(0.05)
    return 0


def stop(args: list[str]) -> int:
    data = _load(args[-1])
    if data is None:
        return _no_such(args[-1])
    data.update(status="exited", exit_code=0)
    _save(args[-1], data)
    print(args[-1])
    return 0


def rm(args: list[str]) -> int:
    path = CONTAINERS / f"{args[-1]}.json"
    if not path.exists():
        return _no_such(args[-1])
    path.unlink()
    print(args[-1])
    return 0


def main() -> int:
    STATE.mkdir(parents=True, exist_ok=True)
    with (STATE / "argv.jsonl").open("a") as record:
        record.write(json.dumps(sys.argv[1:]) + "\n")
    command, args = sys.argv[1], sys.argv[2:]
    handlers = {"run": run, "inspect": inspect, "logs": logs, "stop": stop, "rm": rm}
    if command not in handlers:
        print(f"fake docker: unsupported command {command!r}", file=sys.stderr)
        return 2
    return handlers[command](args)


if __name__ == "__main__":
    sys.exit(main())
