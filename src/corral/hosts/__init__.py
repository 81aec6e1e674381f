"""Other hosts: reached over SSH, checked, and used by the runtimes (issue 12)."""
