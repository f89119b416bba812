import type { Cmd } from '../core/types.js';

/** Waits up to 15 s for a unit to be active (not activating or reloading); fixed script, the unit as $1. */
export const activeWithin = (unit: string): Cmd => ({
  argv: ['sh', '-c', 'i=0; while :; do s=$(systemctl is-active -- "$1"); [ "$s" = active ] && exit 0; i=$((i+1)); [ $i -ge 30 ] && { echo "$1 is $s" >&2; exit 1; }; sleep 0.5; done', 'zanuri-active', unit],
});

/**
 * GET of a local HTTP port until the answer contains `expect`, for about 20 s (bash's /dev/tcp: a
 * minimal host has no curl). Fixed script; port, path and expected text as $1..$3.
 */
export const localHttpCmd = (httpPort: number, path: string, expect: string): Cmd => ({
  argv: ['bash', '-c', `i=0; while :; do out=$(timeout 5 bash -c 'exec 3<>/dev/tcp/127.0.0.1/$1 && printf "GET $2 HTTP/1.0\\r\\n\\r\\n" >&3 && cat <&3' zanuri "$1" "$2" 2>&1) && printf '%s' "$out" | grep -q -- "$3" && exit 0; i=$((i+1)); [ $i -ge 40 ] && { printf '%s\\n' "$out" >&2; exit 1; }; sleep 0.5; done`, 'zanuri-http', String(httpPort), path, expect],
});
