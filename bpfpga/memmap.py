"""The 32-bit address map shared by the reference machine and the hardware.

Every pointer a program sees is a 32-bit address in one of these windows, so a 32-bit load of
``xdp_md->data`` yields a full pointer, as in the kernel. Every access is checked against the
window it falls in; an access that is not wholly inside one window traps (TRAP_MEM).
"""
CTX_BASE = 0x1000_0000       # xdp_md (read-only to programs except where the kernel allows)
CTX_SIZE = 0x100
PKT_BASE = 0x2000_0000       # packet buffer; data starts at PKT_BASE + PKT_HEADROOM
PKT_SIZE = 0x0001_0000       # up to 64 KiB buffer (headroom + frame + tailroom)
PKT_HEADROOM = 256           # XDP_PACKET_HEADROOM
STACK_BASE = 0x3000_0000     # call frames, 512 bytes each; r10 = top of the current frame
STACK_FRAME = 512
MAX_CALL_FRAMES = 8
STACK_SIZE = STACK_FRAME * MAX_CALL_FRAMES
MAP_BASE = 0x4000_0000       # map memory: values (and keys) of every map, as linked
MAP_SIZE = 0x1000_0000
MEM_BASE = PKT_BASE          # the conformance suite's "mem" goes in the packet window

INSN_BUDGET = 1_000_000      # default instruction budget per run (the kernel's complexity limit)

WINDOWS = {
    "ctx": (CTX_BASE, CTX_SIZE),
    "packet": (PKT_BASE, PKT_SIZE),
    "stack": (STACK_BASE, STACK_SIZE),
    "map": (MAP_BASE, MAP_SIZE),
}


def frame_top(depth: int) -> int:
    """r10 of call frame `depth` (0 = the entry program)."""
    return STACK_BASE + STACK_SIZE - depth * STACK_FRAME

# Map handles: what `lddw rX, map` yields (the kernel's struct bpf_map *). Not a readable
# window: a program can only hand a handle to a helper. Map-in-map slots hold handles too.
MAP_HANDLE_BASE = 0x5000_0000
MAP_HANDLE_STRIDE = 0x100


def map_handle(n: int) -> int:
    return MAP_HANDLE_BASE + n * MAP_HANDLE_STRIDE


def handle_index(addr: int) -> int | None:
    if addr < MAP_HANDLE_BASE or (addr - MAP_HANDLE_BASE) % MAP_HANDLE_STRIDE:
        return None
    n = (addr - MAP_HANDLE_BASE) // MAP_HANDLE_STRIDE
    return n if n < 0x10000 else None
