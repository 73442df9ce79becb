import os
import sys

from studio.cli import main
from studio.distributed import launched_by_torchrun

code = main()
if launched_by_torchrun():
    # One process of `train --gpus N`, its run finished and saved: leave without the interpreter's teardown, where
    # torch's C++ threads (gloo, the rendezvous store) now and then abort ("terminate called without an active
    # exception", 1 run in 6 of tests/test_distributed.py) and turn a finished run into a failed one.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code or 0)
sys.exit(code)
