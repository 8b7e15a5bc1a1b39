"""python -m mx2trt.benchmark: tools/bench.py's command line (and, with --one, a measuring process)."""
import sys

from . import main

sys.exit(main())
