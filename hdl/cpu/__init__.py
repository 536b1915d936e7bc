"""The eBPF CPU as units (Minerva's shape): ``core.py`` wires them and holds the hazard
control; each unit is a ``wiring.Component`` in a file named after it, tested alone in
tests/test_cpu_units.py."""
from bpfpga.hdl.cpu.core import CPU

__all__ = ["CPU"]
