"""Trap reason codes, shared by the reference machine and the hardware (same numbers)."""
TRAP_NONE = 0
TRAP_ILLEGAL = 1          # unknown opcode
TRAP_RESERVED = 2         # a reserved field is not zero
TRAP_MEM = 3              # access outside every window (or beyond a window's bounds)
TRAP_R10_WRITE = 4        # a write to the read-only frame pointer
TRAP_BUDGET = 5           # instruction budget spent
TRAP_CALL_DEPTH = 6       # bpf-to-bpf call nesting beyond MAX_CALL_FRAMES
TRAP_HELPER = 7           # unknown or unsupported helper id
TRAP_PC = 8               # jump or fall-through outside the program
TRAP_HELPER_FAULT = 9     # a helper failed in a way the kernel would not allow

TRAP_NAMES = {
    TRAP_NONE: "none", TRAP_ILLEGAL: "illegal_instruction", TRAP_RESERVED: "reserved_field",
    TRAP_MEM: "memory_access", TRAP_R10_WRITE: "r10_write", TRAP_BUDGET: "budget",
    TRAP_CALL_DEPTH: "call_depth", TRAP_HELPER: "unknown_helper", TRAP_PC: "pc_out_of_range",
    TRAP_HELPER_FAULT: "helper_fault",
}
