"""`corral report`: the deployment logbook in Markdown, every figure read from the ledger.

`collect` reads the ledger into a `Logbook`; `markdown.render` writes it in the structure of
the hand-written seed (overview, hardware, model, deployment details with the exact run
command, performance, memory and KV capacity measured beside planned, startup breakdown, API
access with curl examples, features, known issues, deployment history).
"""
