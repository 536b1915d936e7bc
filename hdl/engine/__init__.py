"""The XDP engine's units (docs/engine.md); hdl/xdp.py's XDPEngine wires them."""
