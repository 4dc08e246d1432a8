"""The single error type every patch flavour raises."""


class PatchError(Exception):
    """Patch cannot be applied or is malformed; ``str(err)`` is fit for a user.

    ``malformed`` tells the server which status to use: True means the request
    itself is malformed (400 BadRequest), False means it is well formed but does
    not apply to this object (422 Unprocessable Entity).
    """

    def __init__(self, message: str, *, malformed: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.malformed = malformed
