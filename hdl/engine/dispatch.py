"""Dispatch: every frame starting on an input goes to a free lane, or is dropped whole."""
from __future__ import annotations

from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .signatures import ClaimSignature, StreamSignature


class Dispatch(wiring.Component):
    """Inputs ``i0`` .. (the ports, then the injector, whose frames carry their own virtual
    port: ``inj_port``) to lanes ``lane0`` ... An input is ready except in the cycle a frame
    starts (it is given the lowest free lane no lower input took in that cycle); a frame that
    finds no lane is consumed and dropped (``nobuf``), so RX never stalls and a buffer is
    never shared. ``rx`` / ``nobuf``: one event bit per input (frames started, dropped)."""

    def __init__(self, ninputs: int, lanes: int):
        self.ni, self.nl = ninputs, lanes
        members = {f"i{i}": In(StreamSignature) for i in range(ninputs)}
        members.update({f"lane{n}": Out(ClaimSignature) for n in range(lanes)})
        members.update({"inj_port": In(4), "rx": Out(ninputs), "nobuf": Out(ninputs)})
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        NI, N = self.ni, self.nl
        inputs = [getattr(self, f"i{i}") for i in range(NI)]
        lanes = [getattr(self, f"lane{n}") for n in range(N)]
        in_state = [Signal(2, name=f"in{i}_state") for i in range(NI)]   # 0 idle 1 lane 2 drop
        in_lane = [Signal(range(max(2, N)), name=f"in{i}_lane") for i in range(NI)]
        rxseq = Signal(24)          # frames given a lane, in arrival order
        m.d.sync += rxseq.eq(rxseq + sum(L.take.as_unsigned() for L in lanes))
        taken = [Const(0, 1)] * N
        for i, s in enumerate(inputs):
            with m.Switch(in_state[i]):
                with m.Case(0):
                    m.d.comb += s.ready.eq(0)
                    with m.If(s.valid):
                        m.d.comb += self.rx[i].eq(1)
                        got = Const(0, 1)
                        for n, L in enumerate(lanes):
                            can = s.valid & L.free & ~taken[n] & ~got
                            with m.If(s.valid & can):
                                m.d.comb += [L.take.eq(1),
                                             L.port.eq(self.inj_port if i == NI - 1 else i)]
                                m.d.sync += [in_state[i].eq(1), in_lane[i].eq(n)]
                            taken[n] = taken[n] | can
                            got = got | can
                        with m.If(~got):
                            m.d.sync += in_state[i].eq(2)
                            m.d.comb += self.nobuf[i].eq(1)
                with m.Default():
                    m.d.comb += s.ready.eq(1)
                    with m.If(s.valid & s.payload.last):
                        m.d.sync += in_state[i].eq(0)
        # a lane's beats: those of the input streaming into it (at most one is)
        for n, L in enumerate(lanes):
            m.d.comb += L.seq.eq(rxseq)
            for i, s in enumerate(inputs):
                with m.If((in_state[i] == 1) & (in_lane[i] == n)):
                    m.d.comb += [L.rx.valid.eq(s.valid), L.rx.payload.eq(s.payload)]
        return m
