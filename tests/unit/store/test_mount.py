"""check-mount: the mount table against the recommended options, and measured read rates."""

from __future__ import annotations

import json
from pathlib import Path

from corral.store.mount import advise, check_mount, load_advice, mount_for, parse_mounts
from tests.unit.store.conftest import corral

# The seed's share, as the kernel lists it after
#   mount -t nfs4 flashstore.home.arpa:/volume1/models /mnt/models \
#     -o rw,hard,intr,_netdev,noatime,nofail,rsize=1048576,wsize=1048576
SEED_LINE = (
    "flashstore.home.arpa:/volume1/models /mnt/models nfs4 rw,noatime,vers=4.2,"
    "rsize=1048576,wsize=1048576,namlen=255,hard,proto=tcp,timeo=600,retrans=2,sec=sys,"
    "clientaddr=10.0.0.5,local_lock=none,addr=10.0.0.2 0 0"
)
MOUNTS = "\n".join(
    [
        "/dev/vda / ext4 rw,relatime 0 0",
        SEED_LINE,
        "tmpfs /mnt/models/with\\040space tmpfs rw,size=4k 0 0",
        "nas:/slow /mnt/slow nfs rw,relatime,vers=3,rsize=65536,wsize=65536,soft 0 0",
    ]
)


def test_the_seed_mount_line_passes() -> None:
    mount = mount_for(Path("/mnt/models/models--openai--gpt-oss-120b"), MOUNTS)
    assert (mount.fstype, mount.mountpoint) == ("nfs4", Path("/mnt/models"))
    assert mount.options["rsize"] == "1048576"
    assert advise(mount, load_advice()) == []


def test_a_badly_mounted_share_gets_one_warning_per_option() -> None:
    warnings = advise(mount_for(Path("/mnt/slow/x"), MOUNTS), load_advice())
    assert [w.split(" ")[0] for w in warnings] == ["rsize=65536", "wsize=65536", "hard", "noatime"]
    assert "'soft'" in warnings[2]


def test_longest_mountpoint_wins_and_octal_escapes_are_decoded() -> None:
    mount = mount_for(Path("/mnt/models/with space/file"), MOUNTS)
    assert (mount.fstype, mount.mountpoint) == ("tmpfs", Path("/mnt/models/with space"))
    assert advise(mount, load_advice()) == []  # no advice for local filesystems
    assert len(parse_mounts(MOUNTS)) == 4


def test_read_rates_are_measured_on_the_largest_file(tmp_path: Path) -> None:
    (tmp_path / "small").write_bytes(b"x" * 1000)
    (tmp_path / "big").write_bytes(b"y" * 3_000_000)
    (tmp_path / ".corral-stage").mkdir()
    (tmp_path / ".corral-stage" / "bigger").write_bytes(b"z" * 5_000_000)
    report = check_mount(tmp_path, mounts_text=Path("/proc/mounts").read_text(), max_bytes=10**9)
    assert report.cold is not None
    assert report.cached is not None
    assert report.cold.file.name == "big"
    assert report.cold.bytes_read == 3_000_000
    assert report.cold.method in {"O_DIRECT", "fadvise(DONTNEED)"}
    assert report.cached.bytes_read == 3_000_000
    assert report.cached.method == "page cache"


def test_cli_check_mount_json(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"q" * 100_000)
    done = corral("models", "check-mount", str(tmp_path), "--json", home=tmp_path)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["cold"]["bytes"] == 100_000
    assert result["mountpoint"].startswith("/")


def test_cli_check_mount_of_a_missing_folder(tmp_path: Path) -> None:
    done = corral("models", "check-mount", str(tmp_path / "nope"), home=tmp_path)
    assert done.returncode == 1
    assert "is not a folder" in done.stderr
