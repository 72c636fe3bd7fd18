"""Python stand-ins for rqw's native diagnostic handlers.

Only the compat suite's `WORKER=python` mode imports this package: it lets the real
`rq worker` run the same `rqw.testing.*` function paths that rqw implements natively, so
every compat test is first proven against RQ itself.
"""
