"""Runs legacy_module_scenarios.py under Apache MXNet 1.9.1 and writes its answers as JSON:
bench/.venvs/mxnet/bin/python tests/module/record_legacy_module_reference.py OUT.json
(test_*_module.py does so itself to check the committed reference)."""
import json
import os
import sys
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mxnet  # noqa: E402

import legacy_module_scenarios  # noqa: E402

warnings.simplefilter("ignore")
result = {}
for scenario in legacy_module_scenarios.SCENARIOS:
    result[scenario.__name__] = json.loads(json.dumps(scenario(mxnet), default=float))
with open(sys.argv[1], "w") as f:
    json.dump(result, f, indent=None, sort_keys=True)
