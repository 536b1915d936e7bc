"""The egress crossbar: lanes' packets to the TX ports and the output ring."""
from __future__ import annotations

from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .signatures import EgressSignature, StreamSignature


class EgressCrossbar(wiring.Component):
    """Lanes ``l0`` .. to outputs ``o0`` .. ``o<ports>`` (the last: the output ring). An idle
    output is taken by the lowest lane asking for it and held until its last beat; ``owner``
    is the output ring's lane (the ring writer reads its header), ``tx`` one event bit per
    port (frames sent)."""

    def __init__(self, ports: int, lanes: int):
        self.np, self.nl = ports, lanes
        members = {f"l{n}": In(EgressSignature(ports)) for n in range(lanes)}
        members.update({f"o{d}": Out(StreamSignature) for d in range(ports + 1)})
        members.update({"owner": Out(range(max(2, lanes))), "tx": Out(max(1, ports))})
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        P, N = self.np, self.nl
        lanes = [getattr(self, f"l{n}") for n in range(N)]
        for d in range(P + 1):
            o = getattr(self, f"o{d}")
            busy = Signal(name=f"o{d}_busy")
            owner = Signal(range(max(2, N)), name=f"o{d}_owner")
            with m.If(~busy):
                for n in reversed(range(N)):
                    with m.If(lanes[n].req & (lanes[n].dest == d)):
                        m.d.sync += [busy.eq(1), owner.eq(n)]
            for n, L in enumerate(lanes):
                with m.If(busy & (owner == n)):
                    m.d.comb += [o.valid.eq(L.s.valid), L.s.ready.eq(o.ready)]
                    with m.If(L.s.valid & o.ready & L.s.payload.last):
                        m.d.sync += busy.eq(0)
                        if d < P:
                            m.d.comb += self.tx[d].eq(1)
            # the payload is not gated (valid is): the owner's, or the one lane's
            m.d.comb += o.payload.eq(Array(L.s.payload for L in lanes)[owner] if N > 1
                                     else lanes[0].s.payload)
            if d == P:
                m.d.comb += self.owner.eq(owner)
        return m
