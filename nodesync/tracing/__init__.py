"""Running a command under a seccomp filter that asks us: what it calls, and what a profile refuses.

``spo record`` and ``spo run`` (the command layer is :mod:`hooks.command.record`) are
built on the kernel's seccomp user notification: the command is started with a
filter whose answer for the syscalls we want to see is ``SECCOMP_RET_USER_NOTIF``;
the kernel then stops the calling thread and hands us (arch, number, arguments,
thread id) on a listener file descriptor, and we let the call go on
(``SECCOMP_USER_NOTIF_FLAG_CONTINUE``) or fail it with an errno. The filter is
inherited by every thread and child and survives ``execve``, and the caller
waits for our answer, so nothing escapes it: a child that lives a millisecond
is still alive, blocked in its syscall, while we look at it.

- :mod:`.kernel`: the system calls and structures (seccomp, pidfd, ioctl), and
  what this needs of the machine (:func:`~.kernel.check`).
- :mod:`.filters`: the BPF programs: "tell us everything" (recording) and a
  profile compiled with libseccomp as runc compiles it (running).
- :mod:`.supervising`: start the command under a filter and answer its
  notifications until every process of it has gone.
"""
