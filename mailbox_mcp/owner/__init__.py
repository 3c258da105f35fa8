"""The owner's command line: `mailbox-mcp`.

cli.py       the commands, and the stdio entry point
doctor.py    `mailbox-mcp doctor`: every link a message crosses, and how to fix it
snippets.py  ready-to-paste configuration for the LLM hosts
"""
