"""Executor.debug_str: MXNet's printout of a bound executor's execution plan.

MXNet prints every node of the graph it runs (the forward graph, plus the backward graph when
some argument wants a gradient) and the memory that plan allocates for its internal values
("Total 15 MB allocated"). graphc plans the same graph the same way a compiled block would:
the symbol typed with the executor's shapes, differentiated with respect to the arguments whose
grad_req is not 'null', simplified (a gradient that is zero through BlockGrad folds away, as
MXNet's zero propagation removes it) and given a memory plan; the arena the plan needs is the
allocation reported. Arguments, gradients and outputs live in the executor's own arrays and
are not counted, as in MXNet.
"""
from __future__ import annotations

from .ops.graph import value_names


def execution_graph(symbol, shapes: dict, dtypes: dict, grad_req: dict):
    from .passes.autodiff import differentiate
    from .passes.pipeline import SIMPLIFY
    graph = symbol._bind(shapes, dtypes)
    wrt = [n for n in graph.inputs if grad_req.get(n.name, "null") != "null"]
    if wrt:
        graph = differentiate(graph, wrt).graph
    return SIMPLIFY(graph)


def debug_str(symbol, shapes: dict, dtypes: dict, grad_req: dict) -> str:
    from .passes.memory import plan_memory
    graph = execution_graph(symbol, shapes, dtypes, grad_req)
    names = value_names(graph)
    lines = ["Symbol Outputs:"]
    lines += [f"\toutput[{i}]={_entry(v, names)}" for i, v in enumerate(graph.outputs)]
    for node in graph.nodes:
        if node.is_var:
            lines.append(f"Variable:{node.name}")
            continue
        if node.is_const:
            lines.append(f"Constant:{names.get((id(node), 0), node.name)} {node.types[0]}")
            continue
        lines += ["--------------------", f"Op:{node.op}, Name={node.name}", "Inputs:"]
        lines += [f"\targ[{i}]={_entry(v, names)}" for i, v in enumerate(node.inputs)]
        if node.attrs:
            lines.append("Attrs:")
            lines += [f"\t{k}={v}" for k, v in node.attrs.items()]
    total = sum(plan_memory(graph).arena_size.values())
    lines.append(f"Total {total >> 20} MB allocated")
    return "\n".join(lines) + "\n"


def _entry(value, names) -> str:
    node = value.node
    if node.is_var:
        return f"{node.name}(0) version=0"
    return f"{node.name}({value.index})"
