"""The control port's register map: the contract between the engine (hdl/xdp.py) and the host
library (host/device.py). Pure constants, no Amaranth: the host imports it.

Wishbone B4 classic, 32-bit data, WORD addresses (as LiteX's UART bridge and Etherbone use
them), ``ADR_BITS`` wide. docs/registers.md is the prose version of this file.
"""
from bpfpga.records import INJ_HDR, RING_HDR, TRACE_REC

ADR_BITS = 20
IDENT = 0x62706658            # "bpfX": the XDP engine (the stand-in answers 0x62706653)
VERSION = 3                   # 2: write window and keyed commit; 3: capability registers
MIN_VERSION = 2               # the oldest engine the host drives (version 2: every helper and
                              # map type, trace_printk included, docs/registers.md)

# regions (word addresses)
REGS = 0x00000                # registers, below
COUNTERS = 0x10000            # 32-bit counters, index below
MAPDESC = 0x20000             # map descriptors: map n at MAPDESC + 8 n, 8 words
PM_STAGE = 0x30000            # program staging memory: slot s = words 2 s (low), 2 s + 1 (high)
INJ_RING = 0x40000            # inject ring: 64-bit word i = words 2 i, 2 i + 1
OUT_RING = 0x50000            # output ring (PASS towards the host, or every packet in capture)
TRACE = 0x60000               # trace FIFO: record r, 64-bit word w = words 16 r + 2 w, + 1 (high)
MAPMEM = 0x80000              # map memory: word w = bytes 4 w .. 4 w + 3 of the map window

# registers (REGS + n)
R_IDENT, R_VERSION, R_INFO, R_MAP_BYTES, R_PKT_BYTES, R_INJ_WORDS, R_OUT_WORDS, R_NS_PER_CYCLE = range(8)
R_CTRL = 8          # rw: bit 0 ENABLE (start programs), bit 1 CAPTURE (every result to the ring),
                    #     bit 2 CLEAR counters (self-clearing)
R_STATUS = 9        # r: bit 0 IDLE (no core runs a program), bit 1 COMMIT busy, bit 2 CHECK busy,
                    #    bit 3 MAPCLR busy, bits 8.. lanes holding a packet
R_PROG_LEN = 10     # r: slots of the committed program image
R_BUDGET = 11       # rw: instruction budget per program run
R_MAP_LEN = 12      # rw: bytes of map memory programs may access (values); above: keys, metadata
R_NMAPS = 13        # rw: maps in the descriptor table
R_CHECK = 14        # w: n -> CRC-32 of staging slots [0, n) into R_CRC (R_STATUS bit 2 while busy)
R_CRC = 15          # r
R_COMMIT = 16       # w: n -> CRC of staging [0, n); if it equals R_COMMIT_KEY, between packets
                    #    copy staging [0, n) into every core, PROG_LEN = n; else refused
R_COMMITS = 17      # r: commits done (the host waits for it to move)
R_INJ_WR = 18       # rw: inject ring write index (64-bit words, free running mod 2^16)
R_INJ_RD = 19       # r
R_OUT_WR = 20       # r: output ring write index (whole records only)
R_OUT_RD = 21       # rw
R_KTIME_LO, R_KTIME_HI = 22, 23   # r: the engine clock (ns)
R_SEED = 24         # w: get_prandom_u32 state of every core
R_MAPCLR = 25       # w: n -> zero map memory bytes [0, n) (R_STATUS bit 3 while busy)
R_TRACE_DEPTH = 32  # r: records the trace FIFO holds (0: the engine has no trace unit)
R_TRACE_WR = 33     # r: records written (free running mod 2^16)
R_TRACE_RD = 34     # rw: records the host has read (it frees them by writing this)
# the write guard: every write but R_WIN / R_WIN_CHECK must fall in an open write window
R_WIN = 40          # w: base word address[0:20] | (words - 1)[20:28] | WIN_TAG[28:32]
R_WIN_CHECK = 41    # w: ~R_WIN (all 32 bits): opens the window R_WIN names, else nothing
R_GUARD = 42        # r: writes accepted[0:16] | writes refused[16:24] | commits refused[24:32]
R_COMMIT_KEY = 43   # w: the CRC-32 the next R_COMMIT's staging [0, n) must have (one use)
R_PROG_CRC = 44     # r: CRC-32 of the committed image (checked by the hardware at its commit)
# capabilities (version 3): what the helper unit was built with (hdl/config.py helpers, map_types)
R_HELPERS0 = 48     # r: R_HELPERS0 + k, bit b: helper id 32 k + b is built (k < HELPER_WORDS)
HELPER_WORDS = 4
R_MAP_TYPES = 52    # r: bit t: map type t is built

CTRL_ENABLE, CTRL_CAPTURE, CTRL_CLEAR = 1, 2, 4
WIN_TAG = 0xA                 # R_WIN[28:32]: a window write without it opens nothing
WIN_MAX = 256                 # words a window takes (the bridge's bursts are <= 255)

# counters (COUNTERS + n)
C_VERDICT = 0                 # + XDP_ABORTED .. XDP_REDIRECT
C_RX = 8                      # + input (ports 0..P-1, then the inject ring): frames started
C_TX = 16                     # + port: frames sent
C_RUNT = 24                   # frames shorter than 14 bytes, dropped
C_OVERSIZE = 25               # frames longer than the packet buffer takes, dropped
C_NOBUF = 26                  # frames dropped because every packet buffer was busy
C_HOST_DROP = 27              # results dropped because the output ring was full
C_HOST = 28                   # records written to the output ring
C_TAILCALL = 29               # tail calls taken
C_TRACE = 30                  # trace_printk records written to the trace FIFO
C_TRACE_DROP = 31             # trace_printk records lost: the FIFO was full
C_TRAP = 32                   # + trap reason (bpfpga/traps.py)
C_BUSY = 48                   # + core: cycles spent running programs
C_PKTS = 56                   # + core: packets run
N_COUNTERS = 64

# the records (output ring header, inject header, trace record, map descriptor, STATUS and
# INFO bits) are field tables in bpfpga/records.py: the engine's layouts (hdl/layouts.py) and
# the host's pack/unpack are both built from them
HDR_WORDS = RING_HDR.words            # then the packet, 8 bytes a word
INJ_HDR_WORDS = INJ_HDR.words         # then the frame
TRACE_REC_WORDS = TRACE_REC.words     # in a slot of TRACE_SLOT_WORDS
TRACE_SLOT_WORDS = 8

SLOT_EMPTY, SLOT_VALID, SLOT_DELETED = 0, 1, 2
