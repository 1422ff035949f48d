"""The Audit Logs as tenants read them: the documented APIs, the pages of both
consoles and the CSV export, scoped by the caller's tenant.

Above ``tenants`` (whose scope and access rules it uses) and ``audit`` (the log
itself, which every app writes to and which knows nobody).
"""
