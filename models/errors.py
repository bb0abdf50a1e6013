"""User-facing errors: one clear line for the CLI, a 4xx for the server."""


class UserError(Exception):
    """A problem with what the user asked for (bad name, missing file, bad shape).

    Command lines print ``str(error)`` on one line and exit non-zero; no traceback.
    """
