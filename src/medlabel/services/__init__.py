"""Use cases that own a transaction: the one place the server and the CLI share.

Each function takes the :class:`~medlabel.services.context.Context` and the acting
:class:`~medlabel.services.access.Principal`, checks permissions, and does its work in
one database transaction, so a failure never leaves a half-stored record.
"""
