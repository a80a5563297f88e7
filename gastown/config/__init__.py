"""gastown.toml: its schema (``schema``), loading (``load``) and comment-preserving edits (``edit``)."""
