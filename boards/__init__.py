"""Boards bpfpga builds for: one small module per board, gathered in :data:`BOARDS`."""
from __future__ import annotations

from bpfpga.boards.base import Board, Cable, EthPort, HostLink
from bpfpga.errors import BpfpgaError

from bpfpga.boards import butterstick, colorlight_5a_75b, ecpix5, ulx3s, versa_ecp5

BOARDS: dict[str, Board] = {
    b.name: b
    for mod in (colorlight_5a_75b, ecpix5, butterstick, versa_ecp5, ulx3s)
    for b in mod.BOARDS
}


class BoardError(BpfpgaError):
    """An unknown board, a missing tool, cable or bitstream, a failed build."""


def get_board(name: str) -> Board:
    try:
        return BOARDS[name]
    except KeyError:
        raise BoardError(f"unknown board {name!r} (known: {', '.join(BOARDS)})") from None


__all__ = ["BOARDS", "Board", "BoardError", "Cable", "EthPort", "HostLink", "get_board"]
