//! The table as text: one line per device for the boot report's registry section.

use core::fmt;

use super::{DeviceView, OwnershipTable};

impl fmt::Display for DeviceView {
    /// `0000:00:04.0 group=3 state=attached owner=1 space=2 kernel-users=0 faults=4 stray=0
    /// queued=2 lost=1`, with `-` for no owner or no address space.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} group={} state={}", self.bdf, self.group, self.state)?;
        match self.state.owner() {
            Some(owner) => write!(f, " owner={owner}")?,
            None => f.write_str(" owner=-")?,
        }
        match self.state.address_space() {
            Some(space) => write!(f, " space={space}")?,
            None => f.write_str(" space=-")?,
        }
        write!(
            f,
            " kernel-users={} faults={} stray={} queued={} lost={}",
            self.kernel_users,
            self.owned_faults,
            self.stray_faults,
            self.queued_events,
            self.lost_events
        )
    }
}

impl fmt::Display for OwnershipTable {
    /// Every device's line (see [`DeviceView`]'s `Display`) in address order, each ending in
    /// a newline.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for device in self.devices() {
            writeln!(f, "{device}")?;
        }
        Ok(())
    }
}
