package chaos

import (
	"os"
	"path/filepath"
)

// hookScript is both the promote and the demote hook of every replica. It
// appends to the shared timeline as the example hooks do, switches the
// replica's app in the store (promote raises the fence with the token), and
// misbehaves as the replica's hook-mode file says: "<event>-fail",
// "<event>-hang" (until leaderd's timeout kills its process group; a day, so
// a hook that outlives its leaderd is still there at the end) or "flood"
// (2 MB of output). The mode is read at each run, so a fault can be
// switched on and off under a running replica.
const hookScript = `#!/bin/sh
set -u
timeline() {
	echo "$(date +%s%N) $LEADERD_EVENT-$1 $LEADERD_ID ${LEADERD_FENCING_TOKEN:--} $LEADERD_REASON" >>"$HOOK_TIMELINE"
}
timeline start
mode=$(cat "$CHAOS_DIR/hook-mode.$LEADERD_ID" 2>/dev/null || true)
case "$mode" in
"$LEADERD_EVENT-fail") echo "chaos: $LEADERD_EVENT hook fails" >&2; exit 1 ;;
"$LEADERD_EVENT-hang") sleep 86400 ;;
flood) head -c 2000000 /dev/zero | tr '\0' x | fold -w 200 >&2 ;;
esac
case "$LEADERD_EVENT" in
promote) wget -q -O /dev/null --post-data "" "$STORE_URL/promote?id=$LEADERD_ID&token=$LEADERD_FENCING_TOKEN" || exit 1 ;;
demote) wget -q -O /dev/null --post-data "" "$STORE_URL/demote?id=$LEADERD_ID" || exit 1 ;;
esac
timeline end
`

// hookMode values.
const (
	hookOK          = ""
	hookPromoteFail = "promote-fail"
	hookPromoteHang = "promote-hang"
	hookDemoteFail  = "demote-fail"
	hookDemoteHang  = "demote-hang"
	hookFlood       = "flood"
)

func writeHook(dir string) (string, error) {
	hook := filepath.Join(dir, "hook.sh")
	return hook, os.WriteFile(hook, []byte(hookScript), 0o755)
}

// setFlag creates or removes a per-replica flag file holding content.
func setFlag(path, content string) error {
	if content == "" {
		err := os.Remove(path)
		if os.IsNotExist(err) {
			return nil
		}
		return err
	}
	return os.WriteFile(path, []byte(content), 0o644)
}
