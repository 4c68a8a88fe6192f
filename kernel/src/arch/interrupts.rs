//! The IDT: every CPU exception gets a diagnostic that ends the run with a failure status;
//! device vectors (32..=47) dispatch to handlers registered at run time; MSI vectors
//! (48..=239) go to `device_vectors`, which counts them and calls their owner; 0xff is the
//! spurious vector. Entry stubs are naked functions (stable Rust has no `x86-interrupt` ABI).

use super::exit::{ExitCode, exit};
use super::gdt;
use core::sync::atomic::{AtomicUsize, Ordering};
use spin::Once;
use x86_64::VirtAddr;
use x86_64::structures::DescriptorTablePointer;

/// First vector available to devices.
pub const FIRST_DEVICE_VECTOR: u8 = 32;
/// Last vector with an entry stub for devices.
pub const LAST_DEVICE_VECTOR: u8 = 47;
/// The local APIC's spurious-interrupt vector.
pub const SPURIOUS_VECTOR: u8 = 0xff;

/// The register state saved by the entry stubs, in stack order.
#[repr(C)]
#[derive(Debug)]
pub struct Frame {
    /// General-purpose registers, pushed by the common stub (r15 first in memory).
    pub r15: u64,
    /// Saved register.
    pub r14: u64,
    /// Saved register.
    pub r13: u64,
    /// Saved register.
    pub r12: u64,
    /// Saved register.
    pub r11: u64,
    /// Saved register.
    pub r10: u64,
    /// Saved register.
    pub r9: u64,
    /// Saved register.
    pub r8: u64,
    /// Saved register.
    pub rbp: u64,
    /// Saved register.
    pub rdi: u64,
    /// Saved register.
    pub rsi: u64,
    /// Saved register.
    pub rdx: u64,
    /// Saved register.
    pub rcx: u64,
    /// Saved register.
    pub rbx: u64,
    /// Saved register.
    pub rax: u64,
    /// The vector number, pushed by the per-vector stub.
    pub vector: u64,
    /// The CPU's error code, or 0 for vectors without one.
    pub error_code: u64,
    /// Interrupted instruction pointer (pushed by the CPU).
    pub rip: u64,
    /// Interrupted code segment.
    pub cs: u64,
    /// Interrupted RFLAGS.
    pub rflags: u64,
    /// Interrupted stack pointer.
    pub rsp: u64,
    /// Interrupted stack segment.
    pub ss: u64,
}

/// A device-interrupt handler. It runs with interrupts disabled; it must send the EOI itself
/// (`apic::end_of_interrupt`) if its source needs one.
pub type Handler = fn(&Frame);

static HANDLERS: [AtomicUsize; 256] = [const { AtomicUsize::new(0) }; 256];

/// Why a vector could not be registered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegisterError {
    /// The vector is an exception or has no entry stub.
    NotADeviceVector(u8),
    /// Another handler owns the vector.
    Busy(u8),
}

/// Installs `handler` for device vector `vector`.
pub(crate) fn register(vector: u8, handler: Handler) -> Result<(), RegisterError> {
    if !(FIRST_DEVICE_VECTOR..=LAST_DEVICE_VECTOR).contains(&vector) {
        return Err(RegisterError::NotADeviceVector(vector));
    }
    HANDLERS[usize::from(vector)]
        .compare_exchange(0, handler as usize, Ordering::AcqRel, Ordering::Acquire)
        .map(|_| ())
        .map_err(|_| RegisterError::Busy(vector))
}

/// The exception names of vectors 0..32 (Intel SDM vol. 3, table 6-1).
pub const EXCEPTION_NAMES: [&str; 32] = [
    "#DE divide error",
    "#DB debug",
    "NMI",
    "#BP breakpoint",
    "#OF overflow",
    "#BR bound range exceeded",
    "#UD invalid opcode",
    "#NM device not available",
    "#DF double fault",
    "coprocessor segment overrun",
    "#TS invalid TSS",
    "#NP segment not present",
    "#SS stack-segment fault",
    "#GP general protection fault",
    "#PF page fault",
    "reserved (15)",
    "#MF x87 floating-point error",
    "#AC alignment check",
    "#MC machine check",
    "#XM SIMD floating-point exception",
    "#VE virtualization exception",
    "#CP control protection exception",
    "reserved (22)",
    "reserved (23)",
    "reserved (24)",
    "reserved (25)",
    "reserved (26)",
    "reserved (27)",
    "#HV hypervisor injection",
    "#VC VMM communication",
    "#SX security exception",
    "reserved (31)",
];

/// Whether the CPU pushes an error code for exception `vector`.
const fn has_error_code(vector: u8) -> bool {
    matches!(vector, 8 | 10 | 11 | 12 | 13 | 14 | 17 | 21 | 29 | 30)
}

/// Saves the general-purpose registers, calls `dispatch(&mut Frame)`, restores and returns.
#[unsafe(naked)]
extern "C" fn common_entry() {
    core::arch::naked_asm!(
        "push rax", "push rbx", "push rcx", "push rdx", "push rsi", "push rdi", "push rbp",
        "push r8", "push r9", "push r10", "push r11", "push r12", "push r13", "push r14",
        "push r15",
        "mov rdi, rsp",
        "cld",
        "call {dispatch}",
        "pop r15", "pop r14", "pop r13", "pop r12", "pop r11", "pop r10", "pop r9", "pop r8",
        "pop rbp", "pop rdi", "pop rsi", "pop rdx", "pop rcx", "pop rbx", "pop rax",
        "add rsp, 16",
        "iretq",
        dispatch = sym dispatch,
    );
}

macro_rules! entry_stubs {
    ($($vector:literal => $name:ident),* $(,)?) => {
        $(
            #[unsafe(naked)]
            extern "C" fn $name() {
                // The stack is 16-byte aligned after the CPU's frame (+ error code or our 0),
                // the vector and the 15 registers: 22 words.
                core::arch::naked_asm!(
                    ".if {has_error} == 0",
                    "push 0",
                    ".endif",
                    "push {vector}",
                    "jmp {common}",
                    has_error = const has_error_code($vector) as u8,
                    vector = const $vector,
                    common = sym common_entry,
                );
            }
        )*
        const STUBS: &[(u8, extern "C" fn())] = &[$(($vector, $name)),*];
    };
}

entry_stubs! {
    0 => v0, 1 => v1, 2 => v2, 3 => v3, 4 => v4, 5 => v5, 6 => v6, 7 => v7, 8 => v8, 9 => v9,
    10 => v10, 11 => v11, 12 => v12, 13 => v13, 14 => v14, 15 => v15, 16 => v16, 17 => v17,
    18 => v18, 19 => v19, 20 => v20, 21 => v21, 22 => v22, 23 => v23, 24 => v24, 25 => v25,
    26 => v26, 27 => v27, 28 => v28, 29 => v29, 30 => v30, 31 => v31,
    32 => v32, 33 => v33, 34 => v34, 35 => v35, 36 => v36, 37 => v37, 38 => v38, 39 => v39,
    40 => v40, 41 => v41, 42 => v42, 43 => v43, 44 => v44, 45 => v45, 46 => v46, 47 => v47,
    48 => v48, 49 => v49, 50 => v50, 51 => v51, 52 => v52, 53 => v53, 54 => v54, 55 => v55,
    56 => v56, 57 => v57, 58 => v58, 59 => v59, 60 => v60, 61 => v61, 62 => v62, 63 => v63,
    64 => v64, 65 => v65, 66 => v66, 67 => v67, 68 => v68, 69 => v69, 70 => v70, 71 => v71,
    72 => v72, 73 => v73, 74 => v74, 75 => v75, 76 => v76, 77 => v77, 78 => v78, 79 => v79,
    80 => v80, 81 => v81, 82 => v82, 83 => v83, 84 => v84, 85 => v85, 86 => v86, 87 => v87,
    88 => v88, 89 => v89, 90 => v90, 91 => v91, 92 => v92, 93 => v93, 94 => v94, 95 => v95,
    96 => v96, 97 => v97, 98 => v98, 99 => v99, 100 => v100, 101 => v101, 102 => v102,
    103 => v103, 104 => v104, 105 => v105, 106 => v106, 107 => v107, 108 => v108, 109 => v109,
    110 => v110, 111 => v111, 112 => v112, 113 => v113, 114 => v114, 115 => v115, 116 => v116,
    117 => v117, 118 => v118, 119 => v119, 120 => v120, 121 => v121, 122 => v122, 123 => v123,
    124 => v124, 125 => v125, 126 => v126, 127 => v127, 128 => v128, 129 => v129, 130 => v130,
    131 => v131, 132 => v132, 133 => v133, 134 => v134, 135 => v135, 136 => v136, 137 => v137,
    138 => v138, 139 => v139, 140 => v140, 141 => v141, 142 => v142, 143 => v143, 144 => v144,
    145 => v145, 146 => v146, 147 => v147, 148 => v148, 149 => v149, 150 => v150, 151 => v151,
    152 => v152, 153 => v153, 154 => v154, 155 => v155, 156 => v156, 157 => v157, 158 => v158,
    159 => v159, 160 => v160, 161 => v161, 162 => v162, 163 => v163, 164 => v164, 165 => v165,
    166 => v166, 167 => v167, 168 => v168, 169 => v169, 170 => v170, 171 => v171, 172 => v172,
    173 => v173, 174 => v174, 175 => v175, 176 => v176, 177 => v177, 178 => v178, 179 => v179,
    180 => v180, 181 => v181, 182 => v182, 183 => v183, 184 => v184, 185 => v185, 186 => v186,
    187 => v187, 188 => v188, 189 => v189, 190 => v190, 191 => v191, 192 => v192, 193 => v193,
    194 => v194, 195 => v195, 196 => v196, 197 => v197, 198 => v198, 199 => v199, 200 => v200,
    201 => v201, 202 => v202, 203 => v203, 204 => v204, 205 => v205, 206 => v206, 207 => v207,
    208 => v208, 209 => v209, 210 => v210, 211 => v211, 212 => v212, 213 => v213, 214 => v214,
    215 => v215, 216 => v216, 217 => v217, 218 => v218, 219 => v219, 220 => v220, 221 => v221,
    222 => v222, 223 => v223, 224 => v224, 225 => v225, 226 => v226, 227 => v227, 228 => v228,
    229 => v229, 230 => v230, 231 => v231, 232 => v232, 233 => v233, 234 => v234, 235 => v235,
    236 => v236, 237 => v237, 238 => v238, 239 => v239,
    255 => v255,
}

/// One 64-bit interrupt gate (Intel SDM vol. 3, figure 6-8).
#[repr(C)]
#[derive(Clone, Copy)]
struct Gate {
    offset_low: u16,
    selector: u16,
    ist: u8,
    attributes: u8,
    offset_middle: u16,
    offset_high: u32,
    reserved: u32,
}

impl Gate {
    const MISSING: Gate = Gate {
        offset_low: 0,
        selector: 0,
        ist: 0,
        attributes: 0,
        offset_middle: 0,
        offset_high: 0,
        reserved: 0,
    };

    /// A present interrupt gate (type 0xe, DPL 0) to `handler` on stack `ist` (0 = none).
    fn interrupt(handler: u64, selector: u16, ist: u8) -> Gate {
        Gate {
            offset_low: handler as u16,
            selector,
            ist,
            attributes: 0x8e,
            offset_middle: (handler >> 16) as u16,
            offset_high: (handler >> 32) as u32,
            reserved: 0,
        }
    }
}

static IDT: Once<[Gate; 256]> = Once::new();

/// Builds and loads the IDT. Call once, after `gdt::init`; the composition root's alone.
pub fn init(_root: &crate::privilege::Privileged) {
    let selector = {
        use x86_64::instructions::segmentation::Segment;
        x86_64::instructions::segmentation::CS::get_reg().0
    };
    let idt = IDT.call_once(|| {
        let mut idt = [Gate::MISSING; 256];
        for &(vector, stub) in STUBS {
            // IST slots in the gate count from 1; 0 means "no stack switch".
            let ist = match vector {
                8 => gdt::DOUBLE_FAULT_IST + 1,
                2 => gdt::NMI_IST + 1,
                18 => gdt::MACHINE_CHECK_IST + 1,
                _ => 0,
            };
            idt[usize::from(vector)] = Gate::interrupt(stub as usize as u64, selector, ist as u8);
        }
        idt
    });
    let pointer = DescriptorTablePointer {
        limit: (size_of::<[Gate; 256]>() - 1) as u16,
        base: VirtAddr::from_ptr(idt.as_ptr()),
    };
    // SAFETY: the table lives forever in a static; every present gate points at a naked stub
    // that saves all registers, matches the CPU frame of its vector and returns with iretq.
    unsafe { x86_64::instructions::tables::lidt(&pointer) };
}

extern "C" fn dispatch(frame: &mut Frame) {
    let vector = frame.vector as u8;
    if vector < FIRST_DEVICE_VECTOR {
        exception(frame);
    }
    if vector == SPURIOUS_VECTOR {
        return;
    }
    if (super::device_vectors::FIRST..=super::device_vectors::LAST).contains(&vector) {
        super::device_vectors::dispatch(vector);
        return;
    }
    let handler = HANDLERS[usize::from(vector)].load(Ordering::Acquire);
    if handler == 0 {
        crate::warn!(
            "irq",
            "interrupt on vector {vector} with no handler; ignored"
        );
        super::apic::end_of_interrupt();
        return;
    }
    // SAFETY: only `register` stores into HANDLERS, and it stores `Handler` function pointers.
    let handler: Handler = unsafe { core::mem::transmute::<usize, Handler>(handler) };
    handler(frame);
}

fn exception(frame: &Frame) -> ! {
    let vector = frame.vector as usize;
    let name = EXCEPTION_NAMES[vector % 32];
    crate::console::emergency_write(format_args!(
        "\nmoat: CPU exception {name} (vector {vector}) error_code={:#x} rip={:#018x} \
         rsp={:#018x} rflags={:#x} cs={:#x}\n",
        frame.error_code, frame.rip, frame.rsp, frame.rflags, frame.cs
    ));
    if vector == 14 {
        let address = x86_64::registers::control::Cr2::read_raw();
        let code = frame.error_code;
        crate::console::emergency_write(format_args!(
            "moat: page fault at address cr2={address:#018x}: {} {} in {} mode{}\n",
            if code & 1 != 0 {
                "protection violation"
            } else {
                "page not present"
            },
            if code & 0x10 != 0 {
                "on instruction fetch"
            } else if code & 2 != 0 {
                "on write"
            } else {
                "on read"
            },
            if code & 4 != 0 { "user" } else { "kernel" },
            if code & 8 != 0 {
                ", reserved bit set"
            } else {
                ""
            },
        ));
    }
    crate::console::emergency_write(format_args!("moat: failed: unhandled CPU exception\n"));
    exit(ExitCode::Failure)
}
