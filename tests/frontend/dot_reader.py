"""A small reader of the DOT language (the subset Graphviz's own writers emit: node, edge,
attribute and subgraph statements), so tests check a DOT text by its structure, not by its
bytes. Refuses anything it does not understand with a ValueError naming the position."""
import re

_TOKEN = re.compile(r'''\s*(?:(?P<string>"(?:[^"\\]|\\.)*")|(?P<arrow>->|--)|(?P<punct>[{}\[\];,=])|'''
                    r'''(?P<id>-?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)|[A-Za-z_\x80-\uffff][A-Za-z0-9_\x80-\uffff]*))''',
                    re.S)


def tokens(text):
    pos, out = 0, []
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise ValueError(f"DOT: cannot read {text[pos:pos + 20]!r} at offset {pos}")
        kind = m.lastgroup
        value = m.group(kind)
        if kind == "string":
            value = re.sub(r'\\(.)', lambda e: "\n" if e.group(1) == "n" else e.group(1), value[1:-1])
            kind = "id"
        out.append((kind, value))
        pos = m.end()
    return out


class DotGraph:
    def __init__(self):
        self.name = None
        self.nodes = {}          # id -> attrs
        self.edges = []          # (tail, head, attrs)
        self.subgraphs = {}      # id -> (attrs, member ids)


def read_dot(text) -> DotGraph:
    toks = tokens(text)
    g = DotGraph()
    i = 0

    def expect(kind, value=None):
        nonlocal i
        if i >= len(toks) or toks[i][0] != kind or (value is not None and toks[i][1] != value):
            got = toks[i] if i < len(toks) else "end of text"
            raise ValueError(f"DOT: expected {value or kind} at token {i}, got {got}")
        i += 1
        return toks[i - 1][1]

    def attr_list():
        nonlocal i
        attrs = {}
        if i < len(toks) and toks[i] == ("punct", "["):
            i += 1
            while toks[i] != ("punct", "]"):
                key = expect("id")
                expect("punct", "=")
                attrs[key] = expect("id")
                if toks[i] in (("punct", ","), ("punct", ";")):
                    i += 1
            i += 1
        return attrs

    def statements(scope_attrs, members):
        nonlocal i
        while toks[i] != ("punct", "}"):
            if toks[i] == ("id", "subgraph"):
                i += 1
                name = expect("id")
                expect("punct", "{")
                attrs, inner = {}, []
                statements(attrs, inner)
                expect("punct", "}")
                g.subgraphs[name] = (attrs, inner)
                members.extend(inner)
            else:
                first = expect("id")
                if toks[i] == ("punct", "="):
                    i += 1
                    scope_attrs[first] = expect("id")
                elif toks[i][0] == "arrow":
                    i += 1
                    second = expect("id")
                    g.edges.append((first, second, attr_list()))
                else:
                    g.nodes.setdefault(first, {}).update(attr_list())
                    members.append(first)
            if i < len(toks) and toks[i] == ("punct", ";"):
                i += 1

    expect("id", "digraph")
    g.name = expect("id")
    expect("punct", "{")
    statements({}, [])
    expect("punct", "}")
    if i != len(toks):
        raise ValueError(f"DOT: text after the graph's closing brace: {toks[i:i + 3]}")
    return g
