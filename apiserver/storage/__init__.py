"""The API server's storage: ``backend.Backend`` is the interface, ``store.Store`` the one in use.

``backend`` (the protocol and its values), ``store`` (the transactional write path
and snapshot reads), ``log`` (reading and trimming the event log), ``follower``
(feeding the watch hub from the log), ``sql`` (every statement, compiled per
database), ``dialects`` with ``sqlite`` and ``postgresql`` (what differs per
database), ``schema`` (the tables).
"""
