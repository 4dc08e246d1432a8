"""The node part of ``mp-nodeagent``: registration, heartbeats, the node's network."""
