/**
 * The one place where argv becomes shell text. POSIX single quotes only: `$'...'` is bash-only and
 * Debian's /bin/sh is dash. Inside single quotes nothing is special except the quote itself,
 * which is closed, escaped and reopened: ' -> '\''.
 */
const safeWord = /^[A-Za-z0-9_@%+=:,./-]+$/;

export function quoteArg(arg: string): string {
  if (arg.includes('\0')) throw new TypeError('a shell argument cannot contain a NUL byte');
  if (safeWord.test(arg)) return arg;
  return `'${arg.replaceAll("'", `'\\''`)}'`;
}

export function renderArgv(argv: readonly string[]): string {
  return argv.map(quoteArg).join(' ');
}
