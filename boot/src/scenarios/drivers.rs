//! Driver-table scenarios: a driver started by the composition root is used through the
//! table and removed again, and its device goes back to blocked with its frames returned.

use crate::drivers::{self, EduDriver};
use alloc::format;
use alloc::string::String;
use moat_iommu::Bdf;
use moat_kernel::{info, passthrough, physmem};

/// Scenario names and what they show.
pub(crate) const SCENARIOS: &[(&str, &str)] = &[(
    "driver-edu-lifecycle",
    "the edu driver the table started works through the table, is removed, its device blocked and its frames back",
)];

/// Runs `name`, or `None` if it is not one of these.
pub(crate) fn run(name: &str) -> Option<Result<(), String>> {
    (name == "driver-edu-lifecycle").then(edu_lifecycle)
}

fn edu_lifecycle() -> Result<(), String> {
    // The edu alone below a root port: a bus reset can clean it on release (a root-bus edu
    // has no reset method and would be quarantined instead).
    let bdf = Bdf::new(0, 1, 0, 0).map_err(|e| format!("{e:?}"))?;
    if !drivers::devices_of("edu").contains(&bdf) {
        return Err(format!("the table started no edu driver on {bdf}"));
    }
    let result = drivers::with::<EduDriver, _>(bdf, |edu| {
        let factorial = edu.factorial(10)?;
        edu.round_trip(0xfeed)?;
        Ok::<u32, String>(factorial)
    })
    .ok_or("the driver of the first edu is not an EduDriver")??;
    if result != 3_628_800 {
        return Err(format!("10! came back as {result}"));
    }
    info!(
        "test",
        "driver-edu: {bdf}: 10! = {result}, DMA round trip ok"
    );
    let line = |bdf| {
        passthrough::registry_lines()
            .into_iter()
            .find(|line| line.starts_with(&format!("registry: {bdf} ")))
            .unwrap_or_default()
    };
    if !line(bdf).contains("state attached owner") || !line(bdf).contains("(edu)") {
        return Err(format!("registry before remove: {}", line(bdf)));
    }
    let free_before = physmem::free_frames();
    drivers::remove(bdf)?;
    let after = line(bdf);
    info!("test", "driver-edu: removed: {after}");
    if !after.contains("state blocked owner -") {
        return Err(format!("registry after remove: {after}"));
    }
    if drivers::devices_of("edu").contains(&bdf) {
        return Err("the table still lists the removed driver".into());
    }
    let free_after = physmem::free_frames();
    if free_after <= free_before {
        return Err(format!(
            "no frames came back on remove ({free_before} -> {free_after} free)"
        ));
    }
    info!(
        "test",
        "driver-edu: frames free {free_before} -> {free_after}"
    );
    Ok(())
}
