"""The MCP server the LLM host starts: the owner's tools and their answers.

app.py         the stdio server (`mailbox-mcp` with no command)
serve.py       the always-on server over HTTP (`mailbox-mcp serve`) and `listen`
serve_auth.py  the bearer token that guards `serve`
tools.py       the tools, registered on an `MCPServer`
results.py     their structured output (remote text only inside envelopes)
error_map.py   a bridge error as the model sees it: what happened, what to do
status.py      `mailbox_status`
"""
