# Managed by zanuri (baseline); edits here are overwritten.
# No core dumps from login shells (the limits.d file covers PAM sessions; this covers the rest).
ulimit -c 0
{{#timeout}}
# An idle interactive shell logs out after {{timeout}} s: an unattended root shell is not left open.
TMOUT={{timeout}}
readonly TMOUT
export TMOUT
{{/timeout}}
