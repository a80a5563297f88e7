"""The review gate: an AI reviewer reads each merge request's diff before it joins a batch.

Pure parts, each unit-tested with tables: ``diff`` (a unified diff as files, hunks and
changed lines), ``document`` (the reviewer's JSON findings document: found in its
output, validated with pydantic; findings outside the diff dropped; gastown's verdict),
``sarif`` (analyzers' SARIF 2.1.0 as findings), ``prompt`` (the reviewer's prompt, the
diff and the issue fenced as untrusted data), ``policy`` (which MRs to review now,
which may join a batch, what a verdict does to an MR) and ``settings``.

Acting parts: ``runner`` runs one review (a throwaway checkout of the MR's commit, the
analyzers, the reviewer through ``roles/launch.py``, the read-only proof) and ``stage``
runs a rig's reviews in parallel, records them and moves their MRs, and recovers
reviews whose process died. docs/review.md is the user's guide.
"""
