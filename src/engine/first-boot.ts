import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import type { Content, Templates } from '../core/content.js';
import { UsageError } from '../core/errors.js';
import { quoteArg, renderArgv } from '../core/quote.js';
import { Secret } from '../core/secret.js';

/**
 * `zanuri cloud-init`: #cloud-config that makes a fresh machine converge itself on its first boot.
 *
 * How zanuri reaches the machine: the images (Debian 12, Ubuntu 22.04/24.04) ship no Node that
 * zanuri can run on, so the first-boot script fetches a Node runtime from a URL the operator gives,
 * pinned by sha256; zanuri itself is one archive (the bundled CLI and the profiles, playbooks and
 * templates it reads) pinned by sha256 too, either inside the user-data (write_files, base64 of
 * the .tar.gz) or fetched from the operator's URL. Nothing is executed before its hash matches.
 */

export interface ArchiveFile { path: string; data: Buffer }

/** Fixed time stamp of every archive entry: the same zanuri gives the same bytes, so the same sha256. */
const ARCHIVE_MTIME = 946_684_800;

function octal(value: number, width: number): string {
  return `${value.toString(8).padStart(width - 1, '0')}\0`;
}

/** A ustar header: names up to 100 bytes, or split at a slash into prefix (155) and name. */
function header(path: string, size: number): Buffer {
  const h = Buffer.alloc(512);
  let name = path;
  let prefix = '';
  if (Buffer.byteLength(path) > 100) {
    const cut = path.lastIndexOf('/', 155);
    if (cut < 0 || Buffer.byteLength(path.slice(cut + 1)) > 100) throw new Error(`bug: archive path too long: ${path}`);
    prefix = path.slice(0, cut);
    name = path.slice(cut + 1);
  }
  h.write(name, 0, 100, 'utf8');
  h.write(octal(0o644, 8), 100, 'ascii');
  h.write(octal(0, 8), 108, 'ascii');
  h.write(octal(0, 8), 116, 'ascii');
  h.write(octal(size, 12), 124, 'ascii');
  h.write(octal(ARCHIVE_MTIME, 12), 136, 'ascii');
  h.write('        ', 148, 'ascii');
  h.write('0', 156, 'ascii');
  h.write('ustar\0', 257, 'ascii');
  h.write('00', 263, 'ascii');
  h.write('root', 265, 'ascii');
  h.write('root', 297, 'ascii');
  h.write(prefix, 345, 155, 'utf8');
  let sum = 0;
  for (const byte of h) sum += byte;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'ascii');
  return h;
}

/** A deterministic .tar.gz of regular files (sorted by path, fixed owner, mode and time). */
export function buildArchive(files: readonly ArchiveFile[]): Buffer {
  const parts: Buffer[] = [];
  for (const file of [...files].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))) {
    parts.push(header(file.path, file.data.length), file.data);
    const pad = (512 - (file.data.length % 512)) % 512;
    if (pad) parts.push(Buffer.alloc(pad));
  }
  parts.push(Buffer.alloc(1024));
  return gzipSync(Buffer.concat(parts), { level: 9 });
}

export const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

export interface FirstBootOptions {
  version: string;
  /** What the machine converges to, in words ("profile zanuri-dev"). */
  what: string;
  /** zanuri provision arguments after `--local --yes --json`: the profile and the --set values. */
  provisionArgs: readonly string[];
  node: { url: string; sha256: string };
  archive: { data: Buffer; url: string | null };
  /** What the user-data carries besides zanuri (for the header: it is readable by the metadata service). */
  carries: readonly string[];
  /**
   * The site profile's overriding templates (its `templates:`), by template name: written by
   * cloud-init under siteTemplatesDir, which provisionArgs must name with --templates.
   */
  siteTemplates?: ReadonlyArray<{ name: string; data: Buffer }>;
}

/** Where first boot finds the site profile's overriding templates (write_files puts them there before runcmd). */
export const siteTemplatesDir = '/opt/zanuri/site-templates';

/** A template name as templates/ has them: relative, plain characters, no `..`. */
const templateName = /^(?!.*(?:^|\/)\.\.?(?:\/|$))[A-Za-z0-9._-]+(?:\/[A-Za-z0-9._-]+)*$/;

const hex64 = /^[0-9a-f]{64}$/;

/** http(s) only, no spaces or control characters: it reaches a shell only quoted, but a typo should stop here. */
export function checkUrl(flag: string, url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new UsageError(`${flag} ${JSON.stringify(url)} is not a URL`);
  }
  if (!['http:', 'https:'].includes(parsed.protocol) || /[\s\x00-\x1f]/.test(url)) {
    throw new UsageError(`${flag} must be an http:// or https:// URL, got ${JSON.stringify(url)}`);
  }
  return url;
}

export function checkSha256(flag: string, value: string): string {
  const v = value.trim().toLowerCase();
  if (!hex64.test(v)) throw new UsageError(`${flag} must be a sha256 (64 hex digits), got ${JSON.stringify(value)}`, { hint: 'for an official Node tarball: the line of SHASUMS256.txt beside it; for a file: sha256sum FILE' });
  return v;
}

/** A URL whose file is a tarball of Node's layout (bin/node) rather than the node binary itself. */
export const isTarball = (url: string): boolean => /\.tar(\.(gz|xz))?$|\.tgz$/.test(new URL(url).pathname);

const textOf = (c: Content): string => (typeof c.text === 'string' ? c.text : Buffer.isBuffer(c.text) ? c.text.toString('utf8') : c.text.reveal());

/** The #cloud-config text. Secrets never get here: a Secret in the arguments is a bug. */
export function firstBootUserData(o: FirstBootOptions, templates: Templates): string {
  for (const arg of o.provisionArgs) if ((arg as unknown) instanceof Secret) throw new Error('bug: a Secret in first-boot arguments');
  const script = templates.render('cloud-init/first-boot.sh', {
    version: o.version,
    what: o.what,
    nodeUrl: quoteArg(checkUrl('--node-url', o.node.url)),
    nodeSha256: checkSha256('--node-sha256', o.node.sha256),
    nodeKind: isTarball(o.node.url) ? 'tarball' : 'binary',
    archiveUrl: quoteArg(o.archive.url ? checkUrl('--zanuri-url', o.archive.url) : ''),
    archiveSha256: sha256(o.archive.data),
    args: renderArgv(o.provisionArgs),
  });
  const text = textOf(script);
  const userData = templates.render('cloud-init/user-data.yaml', {
    version: o.version,
    what: o.what,
    carries: o.carries.length ? o.carries.join('; ') : 'nothing but zanuri and its pinned sources',
    script: text.replace(/\n$/, '').split('\n').map((line: string) => (line ? `      ${line}` : '')).join('\n'),
    embedded: o.archive.url ? false : { archiveBase64: o.archive.data.toString('base64') },
    siteTemplates: (o.siteTemplates ?? []).map((t) => {
      if (!templateName.test(t.name)) throw new Error(`bug: template name ${JSON.stringify(t.name)}`);
      return { path: `${siteTemplatesDir}/${t.name}`, base64: t.data.toString('base64') };
    }),
  });
  return textOf(userData);
}
