//! Killing every process in a child's process group, best effort.
//!
//! [`run`](crate::run) starts each command as the leader of its own process group, so that a
//! wrapper (a shell, a script that starts QEMU) and everything it started can be killed
//! together; killing only the wrapper would leave QEMU running and holding the output pipes.
//!
//! The standard library has no `killpg`, the workspace declares no `libc` dependency and this
//! crate contains no `unsafe`, so the signal is sent by the shell's built-in `kill`, which every
//! POSIX system has. The caller still kills the leader through [`std::process::Child::kill`]:
//! that part does not depend on this helper.

use std::process::{Command, Stdio};

/// Sends SIGKILL to every process in the group whose id is `group_id`. Errors are ignored: the
/// group may already be gone, and the caller kills the leader by other means.
pub(crate) fn kill_group(group_id: u32) {
    // `kill -- -1` would signal every process we may signal, and 0 is our own group: neither
    // is a child's group, so refuse them rather than trust the caller.
    if group_id <= 1 {
        return;
    }
    // The group id goes in as a positional parameter, never spliced into the script.
    let _ = Command::new("/bin/sh")
        .args(["-c", r#"kill -s KILL -- "-$1" 2>/dev/null"#, "kill-group"])
        .arg(group_id.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}
