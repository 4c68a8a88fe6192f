//! In-kernel test scenarios, selected with `test=NAME` on the command line. Each either returns
//! a verdict (the kernel then exits with success or failure) or deliberately ends the run in a
//! way the host-side runner must classify (panic, CPU exception, triple fault, hang).

use alloc::string::String;

/// A scenario's name and what it does.
pub const SCENARIOS: &[(&str, &str)] = &[
    (
        "panic",
        "panics deliberately: the runner must see a failure with the message",
    ),
    (
        "page-fault",
        "reads an unmapped address: the report must name the faulting address",
    ),
    (
        "triple-fault",
        "loads an empty IDT and traps: the machine resets (a failure, never a pass)",
    ),
    (
        "hang",
        "stops making progress forever: the runner's timeout must call it a failure",
    ),
    (
        "timer",
        "checks that the timer interrupt ticks and the clock advances",
    ),
    (
        "acpi-dump",
        "prints every ACPI table as hex (used to capture test fixtures)",
    ),
];

/// The address the page-fault scenario reads: canonical, far above any RAM this kernel maps.
pub const PAGE_FAULT_ADDRESS: u64 = 0x0000_7e57_dead_0000;

/// Runs scenario `name`. `Ok` means it passed; `Err` carries why it failed; `None`: no such
/// scenario here.
///
/// The composition root's alone: some scenarios end the machine on purpose.
pub fn run(_root: &crate::privilege::Privileged, name: &str) -> Option<Result<(), String>> {
    Some(match name {
        "panic" => panic!("deliberate panic requested by test=panic"),
        "page-fault" => {
            // SAFETY: none; this access is meant to fault. The exception handler reports it and
            // ends the run, so execution never continues past it with a bogus value.
            let value = unsafe { core::ptr::read_volatile(PAGE_FAULT_ADDRESS as *const u64) };
            Err(alloc::format!(
                "read of unmapped {PAGE_FAULT_ADDRESS:#x} returned {value:#x}"
            ))
        }
        "triple-fault" => triple_fault(),
        "hang" => loop {
            x86_64::instructions::interrupts::disable();
            x86_64::instructions::hlt();
        },
        "timer" => timer(),
        "bench-vtd" => crate::bench::run(),
        "acpi-dump" => {
            crate::acpi::dump::dump();
            Ok(())
        }
        _ => return None,
    })
}

fn triple_fault() -> ! {
    use x86_64::VirtAddr;
    use x86_64::structures::DescriptorTablePointer;
    let empty = DescriptorTablePointer {
        limit: 0,
        base: VirtAddr::new(0),
    };
    // SAFETY: none needed for memory: with an empty IDT the next exception cannot be delivered,
    // so the CPU shuts down (a reset under QEMU). That is the point of this scenario.
    unsafe {
        x86_64::instructions::tables::lidt(&empty);
    }
    x86_64::instructions::interrupts::int3();
    unreachable!("the CPU survived an exception with an empty IDT")
}

fn timer() -> Result<(), String> {
    let start_ticks = crate::arch::apic::ticks();
    let start_ns = crate::time::now_ns();
    // Wait for 5 ticks (50 ms at 100 Hz); TIMEOUT: 2 s of TSC time is 40x that.
    let ticked = crate::time::poll(2_000_000, || {
        (crate::arch::apic::ticks() >= start_ticks + 5).then_some(())
    });
    let elapsed_ns = crate::time::now_ns() - start_ns;
    match ticked {
        Ok(()) => {
            crate::info!("test", "timer: 5 ticks in {} us", elapsed_ns / 1000);
            Ok(())
        }
        Err(timeout) => Err(alloc::format!(
            "timer: {} ticks in {} us ({timeout})",
            crate::arch::apic::ticks() - start_ticks,
            elapsed_ns / 1000
        )),
    }
}
