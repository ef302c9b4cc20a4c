"""What the admins of this app share."""

EMPTY = "—"
