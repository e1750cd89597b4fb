# Sourced by the resumable training scripts (full_cv.sh, full_final.sh): commit only the given paths, with the
# message in $COMMIT_MSG, retrying while another git command holds the index; a failure leaves them in the work tree.
commit() {
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    git add -- "$@" && git commit -q -m "$COMMIT_MSG" --only -- "$@" && return 0
    sleep 7
  done
  echo "commit failed (left in the work tree): $*"
}
