"""The pod part of ``mp-nodeagent``: namespaces, veths, IPAM, processes, probes, status."""
