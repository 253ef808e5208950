"""`python -m softq_ref train ...`: see softq_ref.cli."""
import sys

from .cli import main

sys.exit(main())
