"""kernelsearch for coding agents: the verifier and the attention generator as tools over the Model Context Protocol
(`kernelsearch mcp`, server.py). The tools themselves (tools.py) know nothing of MCP."""
