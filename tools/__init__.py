"""The tools: the `weerbaar` command, the embedded system, the demo, the mail catcher, backup and
the rebuild commands. Tools may import services; nothing imports tools."""
