"""A seccomp profile like the runtime's default (Kubernetes `RuntimeDefault`), for runc.

containerd's and Docker's default profiles allow a long list of system calls and refuse the rest;
what they refuse is the list below (kernel keyrings, mounts, namespaces, modules, clocks, BPF,
kexec, perf, handle-based opens …). This profile allows everything else and refuses exactly those
with EPERM, which keeps it short and readable; for mamori the effect is the same.
"""

from __future__ import annotations

import platform
from typing import Any

REFUSED = (
    "acct", "add_key", "bpf", "clock_adjtime", "clock_settime", "create_module",
    "delete_module", "finit_module", "fsconfig", "fsmount", "fsopen", "fspick",
    "get_kernel_syms", "get_mempolicy", "init_module", "ioperm", "iopl", "kcmp",
    "kexec_file_load", "kexec_load", "keyctl", "lookup_dcookie", "mbind", "mount",
    "mount_setattr", "move_mount", "move_pages", "name_to_handle_at", "nfsservctl",
    "open_by_handle_at", "open_tree", "perf_event_open", "pivot_root", "process_vm_readv",
    "process_vm_writev", "query_module", "quotactl", "quotactl_fd", "reboot", "request_key",
    "set_mempolicy", "setns", "settimeofday", "swapoff", "swapon", "syslog", "sysfs",
    "umount2", "unshare", "uselib", "userfaultfd", "ustat", "vhangup",
)  # fmt: skip

ARCHITECTURES = {
    "x86_64": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
    "aarch64": ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"],
}
EPERM = 1


def runtime_default_like() -> dict[str, Any]:
    """The `linux.seccomp` section of an OCI runtime config."""
    return {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ARCHITECTURES[platform.machine()],
        "syscalls": [{"names": list(REFUSED), "action": "SCMP_ACT_ERRNO", "errnoRet": EPERM}],
    }
