"""Block.save(prefix) / Block.load(prefix): MXNet 1.9.1's "model archive" for blocks that are
rebuilt by the same code (not exported): `<prefix>-model.json` records, per block in creation
order, the name it had and the names its parent used for its children, and
`<prefix>-model.params` holds save_parameters' structural names.

Loading renames a freshly built model (whose automatic names counted on: dense2 instead of
dense0) back to the saved names, so a parent that keys its children by their names (a custom
`_children[block.name + ...]`) finds the saved parameters. Blocks saved hybridized come back
hybridized; graphc re-traces them on the next call instead of reading MXNet's cached symbol,
whose `inputs`/`symbol` entries are therefore neither written nor needed."""
from __future__ import annotations

import json


def _key(block, index):
    return type(block).__name__.lower() + str(index[0])


def save_model(block, prefix):
    model = {}

    def visit(blk, index, structure):
        entry = {"orig_name": blk.name}
        structure[_key(blk, index)] = entry
        if hasattr(blk, "_active"):      # a HybridBlock
            entry["hybridized"] = bool(blk._active)
        children = {}
        entry["children"] = children
        for ch_name, child in blk._children.items():
            index[0] += 1
            children[child.name] = ch_name
            visit(child, index, entry)

    visit(block, [0], model)
    with open(prefix + "-model.json", "w") as fp:
        json.dump(model, fp)
    block.save_parameters(prefix + "-model.params")


def load_model(block, prefix):
    with open(prefix + "-model.json") as fp:
        model = json.load(fp)

    def visit(blk, index, structure):
        key = _key(blk, index)
        if key not in structure:
            raise ValueError(f"Block.load({prefix!r}): the saved model has no {key!r} here (it has "
                             f"{sorted(k for k in structure if k not in ('orig_name', 'hybridized', 'children'))}); "
                             "the model must be built in the same order as when it was saved")
        entry = structure[key]
        blk._name = entry["orig_name"]
        if entry.get("hybridized") and hasattr(blk, "_active"):
            blk.hybridize(True)
        params = blk.params
        for name in list(params.keys()):           # the parameters follow the block's old name
            param = params._params.pop(name)
            params._params[blk.name + "_" + name[len(params._prefix):]] = param
        for child in blk._children.values():
            index[0] += 1
            visit(child, index, entry)
        saved_names = entry["children"]
        current = list(blk._children.items())
        blk._children.clear()
        for ch_name, child in current:              # children under the names the parent used
            blk._children[saved_names.get(child.name, ch_name)] = child

    visit(block, [0], model)
    block.load_parameters(prefix + "-model.params")
