"""Runs io_scenarios.py under Apache MXNet 1.9.1 and writes its answers as JSON:
bench/.venvs/mxnet/bin/python tests/io/record_io_reference.py OUT.json
(test_data_iters.py does so itself to check the committed reference)."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mxnet  # noqa: E402

import io_scenarios  # noqa: E402

result = {s.__name__: json.loads(json.dumps(s(mxnet), default=float)) for s in io_scenarios.SCENARIOS}
with open(sys.argv[1], "w") as f:
    json.dump(result, f, sort_keys=True)
