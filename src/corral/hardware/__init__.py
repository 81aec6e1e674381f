"""Hardware detection (NVML, nvidia-smi output, /proc) and the hardware kinds recipes match.

`detect_local()` looks at this machine; `detect(...)` takes its sources as arguments so
recorded NVML answers and nvidia-smi captures from other machines drive the same code.
"""
