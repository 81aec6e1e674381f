"""The store on a real NFS mount: a loopback export from Debian's nfs-kernel-server.

Needs root, the kernel's `nfsd` and `nfs` filesystems, and nfs-kernel-server installed.
Where any of that is missing the test skips with the exact error. (On the corral dev VMs
the kernel has neither filesystem, so this has not run there; see docs/models.md.)
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from corral.config import StoreRoot
from corral.store import resolve_model
from corral.store.catalog import scan_roots
from corral.store.mount import check_mount
from corral.store.stage import plan_stage, stage
from corral.store.verify import verify_folder
from tests.support.model_cache import (
    SYNTH_REPO,
    SYNTH_REVISION,
    add_hf_snapshot,
    write_sharded_model,
)

NFS_OPTIONS = "rw,hard,noatime,rsize=1048576,wsize=1048576"


def _run(argv: list[str]) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)
    if done.returncode != 0:
        pytest.skip(f"loopback NFS unavailable: `{' '.join(argv)}` → {done.stderr.strip()}")


def _kernel_supports_nfs() -> None:
    filesystems = Path("/proc/filesystems").read_text().split()
    missing = [fs for fs in ("nfsd", "nfs4") if fs not in filesystems]
    if missing:
        pytest.skip(f"loopback NFS unavailable: the kernel lacks {missing} (/proc/filesystems)")
    for tool in ("rpcbind", "exportfs", "rpc.nfsd", "rpc.mountd", "mount.nfs4"):
        if shutil.which(tool) is None:
            pytest.skip(f"loopback NFS unavailable: {tool} not installed (nfs-kernel-server)")


@pytest.fixture
def nfs_mount() -> Iterator[tuple[Path, Path]]:
    """(export folder, its NFS mount point); everything started here is stopped here."""
    _kernel_supports_nfs()
    export = Path(tempfile.mkdtemp(prefix="corral-nfs-export-"))
    mnt = Path(tempfile.mkdtemp(prefix="corral-nfs-mnt-"))
    if not Path("/proc/fs/nfsd/threads").exists():
        _run(["mount", "-t", "nfsd", "nfsd", "/proc/fs/nfsd"])
    rpcbind = subprocess.Popen(["rpcbind", "-f"])
    mountd = None
    try:
        _run(["exportfs", "-o", "rw,no_root_squash,insecure,fsid=0", f"127.0.0.1:{export}"])
        _run(["rpc.nfsd", "4"])
        mountd = subprocess.Popen(["rpc.mountd", "-F"])
        _run(["mount", "-t", "nfs4", "-o", NFS_OPTIONS, "127.0.0.1:/", str(mnt)])
        yield export, mnt
    finally:
        subprocess.run(["umount", "-f", str(mnt)], check=False)
        subprocess.run(["rpc.nfsd", "0"], check=False)
        subprocess.run(["exportfs", "-u", f"127.0.0.1:{export}"], check=False)
        for proc in (mountd, rpcbind):
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=10)
        shutil.rmtree(export, ignore_errors=True)
        mnt.rmdir()


def test_list_verify_stage_and_check_mount_over_nfs(
    nfs_mount: tuple[Path, Path], tmp_path: Path
) -> None:
    export, mnt = nfs_mount
    src = tmp_path / "src"
    write_sharded_model(src)
    add_hf_snapshot(export, SYNTH_REPO, SYNTH_REVISION, src)
    share = StoreRoot(name="share", path=mnt, read_only=True)
    assert [e.name for e in scan_roots([share]).entries] == [SYNTH_REPO]
    snap = resolve_model(SYNTH_REPO, [share])
    assert verify_folder(snap).ok
    local = StoreRoot(name="nvme", path=tmp_path / "nvme")
    local.path.mkdir()
    assert verify_folder(stage(plan_stage(snap, local)).path).ok
    report = check_mount(mnt, mounts_text=Path("/proc/mounts").read_text(), max_bytes=10**8)
    assert report.mount.fstype == "nfs4"
    assert report.warnings == []
    assert report.cold is not None
    assert report.cold.bytes_read > 0
