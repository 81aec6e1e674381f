"""`corral deploy`: launch a deployment detached (or adopt the one running), watch its
startup, wait for readiness, verify and optionally benchmark it, and record it all in the
ledger so that `corral report` can write the logbook.
"""
