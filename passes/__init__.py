"""Graph-to-graph transforms and analyses (graphc.passes)."""
