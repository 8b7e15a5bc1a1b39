"""`python -m mx2trt`: the mx2trt command line."""
import sys

from .cli import main

sys.exit(main())
