/** A host as the user wrote it: an ssh config alias or address, with optional user and port. */
export interface HostSpec {
  alias: string;
  user?: string;
  port?: number;
}

/** Parses "[user@]host[:port]" and "[user@][v6addr]:port". Usage errors are the caller's to report. */
export function parseHostSpec(spec: string): HostSpec | null {
  // Names, addresses and ssh config aliases only: nothing a shell or ssh option parser would act on.
  const match = /^(?:([A-Za-z0-9_][A-Za-z0-9._-]*)@)?(\[[0-9A-Fa-f:.%]+\]|[A-Za-z0-9_][A-Za-z0-9._-]*)(?::(\d{1,5}))?$/.exec(spec);
  if (!match?.[2]) return null;
  const port = match[3] === undefined ? undefined : Number(match[3]);
  if (port !== undefined && (port < 1 || port > 65535)) return null;
  return {
    alias: match[2].replace(/^\[(.*)\]$/, '$1'),
    ...(match[1] === undefined ? {} : { user: match[1] }),
    ...(port === undefined ? {} : { port }),
  };
}
