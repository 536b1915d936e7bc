"""`python -m bpfpga.host.cli_entry` runs the CLI (for tests and environments without the
console script)."""
from bpfpga.host.cli import main

if __name__ == "__main__":
    main()
