"""Runs module_scenarios.py under Apache MXNet 1.9.1 and writes its answers as JSON:
bench/.venvs/mxnet/bin/python tests/module/record_module_reference.py OUT.json
(test_module_vs_mxnet.py does so itself to check the committed reference)."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mxnet  # noqa: E402

import module_scenarios  # noqa: E402

result = {}
for scenario in module_scenarios.SCENARIOS:
    result[scenario.__name__] = json.loads(json.dumps(scenario(mxnet), default=float))
with open(sys.argv[1], "w") as f:
    json.dump(result, f, indent=None, sort_keys=True)
