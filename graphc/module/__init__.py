"""mx.mod: MXNet 1.9.1's symbolic training API.

    base_module.py       BaseModule: fit, score, predict, iter_predict (the loops)
    module.py            Module: one symbol over one or several devices
    bucketing_module.py  BucketingModule: a Module per bucket key, sharing parameters
    executor_group.py    DataParallelExecutorGroup: one Executor per device, batch slicing
    updates.py           kvstore choice and the update rules Module.update applies
    sequential_module.py SequentialModule: modules chained, outputs to data
    python_module.py     PythonModule, PythonLossModule: parameterless modules in Python
"""
from __future__ import annotations

from .base_module import BaseModule
from .bucketing_module import BucketingModule
from .executor_group import DataParallelExecutorGroup
from .module import Module
from .python_module import PythonLossModule, PythonModule
from .sequential_module import SequentialModule

__all__ = ["BaseModule", "Module", "BucketingModule", "DataParallelExecutorGroup", "SequentialModule",
           "PythonModule", "PythonLossModule"]
