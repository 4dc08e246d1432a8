"""Mounts under a state directory, read from mountinfo (pure)."""

from __future__ import annotations

from componentbase.mounts import mounts_under

MOUNTINFO = """\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
90 22 0:4 uts:[4026532317] /st/n1/pods/u1/uts rw shared:1 - nsfs nsfs rw
91 22 0:4 uts:[4026532318] /st/n1/pods/u2/uts rw shared:1 - nsfs nsfs rw
92 22 0:50 / /st/n1/pods/u\\0402/vol rw shared:1 - tmpfs tmpfs rw
93 22 0:51 / /st/n10/x rw shared:1 - tmpfs tmpfs rw
94 22 0:52 / /st/n1 rw shared:1 - tmpfs tmpfs rw
"""


def test_mounts_under_a_directory_deepest_first() -> None:
    assert mounts_under(MOUNTINFO, "/st/n1/") == [
        "/st/n1/pods/u 2/vol", "/st/n1/pods/u1/uts", "/st/n1/pods/u2/uts", "/st/n1"]
    assert mounts_under(MOUNTINFO, "/st/n1/pods/u1/uts") == ["/st/n1/pods/u1/uts"]
    assert mounts_under(MOUNTINFO, "/elsewhere") == []
