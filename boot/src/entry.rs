//! The image's first instructions: the multiboot2 header (GRUB), the PVH note (QEMU `-kernel`),
//! and the 32-to-64-bit trampoline with its own early page tables. Both entries end in
//! `kernel_start(loader, info)` in long mode with the first 4 GiB identity-mapped.

/// `loader` value passed to `kernel_start` for a PVH boot (`%ebx` = `hvm_start_info`).
pub(crate) const LOADER_PVH: u32 = 1;
/// `loader` value for a multiboot2 boot (`%eax` held the multiboot2 magic, `%ebx` = MBI).
pub(crate) const LOADER_MULTIBOOT2: u32 = 2;
/// `loader` value when the 32-bit entry was reached with an unknown magic.
pub(crate) const LOADER_UNKNOWN: u32 = 0;

core::arch::global_asm!(
    r#"
    /* ---- multiboot2 header (multiboot2 spec 3.1.1): magic, arch 0 (i386), length, checksum ---- */
    .section .multiboot2_header, "a"
    .balign 8
mb2_header_start:
    .long 0xe85250d6
    .long 0
    .long mb2_header_end - mb2_header_start
    .long -(0xe85250d6 + 0 + (mb2_header_end - mb2_header_start))
    /* end tag */
    .balign 8
    .short 0
    .short 0
    .long 8
mb2_header_end:

    /* ---- PVH entry note: name "Xen", type XEN_ELFNOTE_PHYS32_ENTRY (18), 32-bit entry.
       The descriptor is 8 bytes with a zero upper half, so a loader reading either 4 or 8
       bytes sees the same address. ---- */
    .section .note.pvh, "a", @note
    .balign 4
    .long 4
    .long 8
    .long 18
    .asciz "Xen"
    .balign 4
    .quad pvh_entry

    .section .boot.text, "ax"
    .code32

    .global pvh_entry
pvh_entry:
    cli
    cld
    mov edi, {pvh}
    mov esi, ebx
    jmp 2f

    .global multiboot2_entry
multiboot2_entry:
    cli
    cld
    mov esi, ebx
    mov edi, {mb2}
    cmp eax, 0x36d76289
    je 2f
    mov edi, {unknown}

2:
    /* Zero .bss (it holds the boot stack and the early page tables). */
    mov ebx, edi
    mov edx, esi
    mov edi, offset __bss_start
    mov ecx, offset __bss_end
    sub ecx, edi
    shr ecx, 2
    xor eax, eax
    rep stosd
    mov edi, ebx
    mov esi, edx
    mov esp, offset boot_stack_top

    /* Long mode available? CPUID 0x80000001 EDX bit 29. */
    mov eax, 0x80000000
    cpuid
    cmp eax, 0x80000001
    jb 9f
    mov eax, 0x80000001
    cpuid
    test edx, 1 << 29
    jz 9f

    /* Early page tables: PML4[0] -> PDPT, PDPT[0..4] -> 4 page directories of 2 MiB pages,
       identity-mapping the first 4 GiB. The kernel replaces them with its own tables. */
    mov eax, offset boot_pdpt
    or eax, 0x3
    mov [boot_pml4], eax
    mov ecx, 0
3:
    mov eax, ecx
    shl eax, 12
    add eax, offset boot_pd
    or eax, 0x3
    mov [boot_pdpt + ecx * 8], eax
    inc ecx
    cmp ecx, 4
    jb 3b
    mov ecx, 0
4:
    mov eax, ecx
    shl eax, 21
    or eax, 0x83
    mov [boot_pd + ecx * 8], eax
    mov eax, ecx
    shr eax, 11
    mov [boot_pd + ecx * 8 + 4], eax
    inc ecx
    cmp ecx, 2048
    jb 4b

    /* CR4.PAE, EFER.LME|NXE, CR3, CR0.PG|WP|PE, then a far jump into 64-bit code. */
    mov eax, cr4
    or eax, 1 << 5
    mov cr4, eax
    mov eax, offset boot_pml4
    mov cr3, eax
    mov ecx, 0xc0000080
    rdmsr
    or eax, (1 << 8) | (1 << 11)
    wrmsr
    mov eax, cr0
    or eax, (1 << 31) | (1 << 16) | 1
    mov cr0, eax
    lgdt [boot_gdt_pointer]
    /* ljmp 0x08:moat_long_mode_entry (opcode EA, ptr16:32), spelled as bytes because the
       assembler's Intel syntax has no far-jump-to-immediate form. */
    .byte 0xea
    .long moat_long_mode_entry
    .short 0x08

9:
    /* No long mode: say so on COM1 and stop. */
    mov esi, offset no_long_mode_message
8:
    mov al, [esi]
    test al, al
    jz 7f
    mov dx, 0x3f8
    out dx, al
    inc esi
    jmp 8b
7:
    hlt
    jmp 7b

    .code64
moat_long_mode_entry:
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov ss, ax
    xor eax, eax
    mov fs, ax
    mov gs, ax
    mov rsp, offset boot_stack_top
    /* The upper halves of 64-bit registers are undefined after the switch: zero-extend. */
    mov edi, edi
    mov esi, esi
    xor ebp, ebp
    call kernel_start
6:
    cli
    hlt
    jmp 6b

    .section .rodata
no_long_mode_message:
    .asciz "moat: this CPU has no long mode (x86_64); cannot boot\r\n"
    .balign 8
boot_gdt:
    .quad 0
    .quad 0x00af9a000000ffff
    .quad 0x00cf92000000ffff
boot_gdt_end:
boot_gdt_pointer:
    .short boot_gdt_end - boot_gdt - 1
    .quad boot_gdt

    .section .bss
    .balign 4096
boot_pml4:
    .skip 4096
boot_pdpt:
    .skip 4096
boot_pd:
    .skip 4096 * 4
boot_stack:
    .skip 64 * 1024
boot_stack_top:
"#,
    pvh = const LOADER_PVH,
    mb2 = const LOADER_MULTIBOOT2,
    unknown = const LOADER_UNKNOWN,
);
