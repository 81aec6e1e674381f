"""The hosts of one corral process: this machine, and an `SshHost` per remote host, made once.

The control plane asks `pool.host(name)` for a deployment's host and hands it to the
runtimes; everything else (where a replica is reached, whether a silent engine is dead
or its host unreachable) goes through the small functions here, which mean the same on
this machine (always reachable, no forward) as on another.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from corral.config import LOCAL_NAMES, CorralConfig
from corral.hosts.ssh import SshClient, client_for
from corral.hosts.sshhost import SshHost
from corral.runtime.host import Host, LocalHost


@dataclass
class HostPool:
    config: CorralConfig
    home: Path
    local: Host = field(default_factory=LocalHost)
    _remote: dict[str, SshHost] = field(default_factory=dict)

    def host(self, name: str) -> Host:
        """The host called `name` in corral.yaml (`local` is this machine)."""
        if name in LOCAL_NAMES:
            return self.local
        if name not in self._remote:
            self._remote[name] = SshHost(self.client(name))
        return self._remote[name]

    def client(self, name: str) -> SshClient:
        return client_for(self.config, name, self.home)

    def close(self) -> None:
        """End the SSH masters (engines on the hosts keep running)."""
        for host in self._remote.values():
            host.close()


def reachable_url(host: Host, url: str) -> str:
    """Where this machine reaches an engine that listens at `url` on `host`."""
    if not isinstance(host, SshHost):
        return url
    parts = urlsplit(url)
    assert parts.port is not None
    return f"{parts.scheme}://127.0.0.1:{host.reach(parts.port)}{parts.path}"


def address_of(host: Host) -> str:
    """The address a host is reached at (`hosts.NAME.address`); "" for this machine."""
    return host.client.target.address if isinstance(host, SshHost) else ""


def link_up(host: Host) -> bool:
    """False while a remote host's SSH link is down; this machine is always up."""
    return host.link_up() if isinstance(host, SshHost) else True


def relink(host: Host) -> bool:
    return host.relink() if isinstance(host, SshHost) else True
