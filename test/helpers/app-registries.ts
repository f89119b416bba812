/**
 * Package sources for targets that cannot reach the internet, served by the test from the bridge
 * address (10.213.0.1): a PEP 503 "simple" Python index holding wheels the test builds, and an npm
 * registry that forwards to the real registry.npmjs.org (which this controller can reach), rewriting
 * the tarball URLs in the metadata to point back at itself. npm still checks every tarball against
 * the integrity hash the real registry published.
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { AddressInfo } from 'node:net';
import { crc32, gunzipSync } from 'node:zlib';

export const bridgeAddress = '10.213.0.1';

/** A zip archive with stored (uncompressed) entries: all a wheel needs. */
export function zip(files: Array<[string, string]>): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const [name, text] of files) {
    const data = Buffer.from(text, 'utf8');
    const fileName = Buffer.from(name, 'utf8');
    const crc = crc32(data);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0); local.writeUInt16LE(20, 4); local.writeUInt16LE(0, 6); local.writeUInt16LE(0, 8);
    local.writeUInt16LE(0, 10); local.writeUInt16LE(0x21, 12); local.writeUInt32LE(crc, 14); local.writeUInt32LE(data.length, 18);
    local.writeUInt32LE(data.length, 22); local.writeUInt16LE(fileName.length, 26); local.writeUInt16LE(0, 28);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0); central.writeUInt16LE(20, 4); central.writeUInt16LE(20, 6); central.writeUInt16LE(0, 8);
    central.writeUInt16LE(0, 10); central.writeUInt16LE(0, 12); central.writeUInt16LE(0x21, 14); central.writeUInt32LE(crc, 16);
    central.writeUInt32LE(data.length, 20); central.writeUInt32LE(data.length, 24); central.writeUInt16LE(fileName.length, 28);
    central.writeUInt32LE((0o100644 * 0x10000) >>> 0, 38); central.writeUInt32LE(offset, 42);
    locals.push(local, fileName, data);
    centrals.push(central, fileName);
    offset += local.length + fileName.length + data.length;
  }
  const directory = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0); end.writeUInt16LE(files.length, 8); end.writeUInt16LE(files.length, 10);
  end.writeUInt32LE(directory.length, 12); end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, directory, end]);
}

const recordHash = (text: string): string => `sha256=${createHash('sha256').update(text).digest('base64url')}`;

/** A pure-Python wheel (py3-none-any) of one module, as pip installs it. */
export function wheel(dist: string, version: string, module: string, source: string): { file: string; bytes: Buffer; sha256: string } {
  const base = dist.replace(/-/g, '_');
  const info = `${base}-${version}.dist-info`;
  const files: Array<[string, string]> = [
    [`${module}/__init__.py`, source],
    [`${info}/METADATA`, `Metadata-Version: 2.1\nName: ${dist}\nVersion: ${version}\nSummary: zanuri test application\n`],
    [`${info}/WHEEL`, 'Wheel-Version: 1.0\nGenerator: zanuri-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n'],
  ];
  const record = `${files.map(([n, t]) => `${n},${recordHash(t)},${Buffer.byteLength(t)}`).join('\n')}\n${info}/RECORD,,\n`;
  const bytes = zip([...files, [`${info}/RECORD`, record]]);
  return { file: `${base}-${version}-py3-none-any.whl`, bytes, sha256: createHash('sha256').update(bytes).digest('hex') };
}

export interface Served { url: string; requests: string[]; close(): Promise<void> }

function listen(server: Server, requests: string[]): Promise<Served> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, bridgeAddress, () => {
      const { port } = server.address() as AddressInfo;
      resolve({ url: `http://${bridgeAddress}:${port}/`, requests, close: () => new Promise((r) => { server.closeAllConnections(); server.close(() => r()); }) });
    });
  });
}

/** A PEP 503 simple index of these wheels at URL/simple/; the files at URL/files/. */
export function servePythonIndex(wheels: Array<{ dist: string; file: string; bytes: Buffer; sha256: string }>): Promise<Served> {
  const requests: string[] = [];
  const norm = (name: string): string => name.toLowerCase().replace(/[-_.]+/g, '-');
  const server = createServer((req, res) => {
    requests.push(req.url ?? '');
    const path = (req.url ?? '').split('?')[0] ?? '';
    const project = /^\/simple\/([^/]+)\/?$/.exec(path)?.[1];
    if (project) {
      const found = wheels.filter((w) => norm(w.dist) === norm(project));
      if (!found.length) return void res.writeHead(404).end('not found');
      res.writeHead(200, { 'content-type': 'text/html' });
      return void res.end(`<!DOCTYPE html><html><body>\n${found.map((w) => `<a href="/files/${w.file}#sha256=${w.sha256}">${w.file}</a><br/>`).join('\n')}\n</body></html>\n`);
    }
    const wanted = wheels.find((w) => path === `/files/${w.file}`);
    if (wanted) {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': wanted.bytes.length });
      return void res.end(wanted.bytes);
    }
    res.writeHead(404).end('not found');
  });
  return listen(server, requests);
}

/** Forwards GETs to registry.npmjs.org; JSON metadata has the registry's tarball URLs rewritten to this server. */
export async function serveNpmRegistry(upstream = 'https://registry.npmjs.org'): Promise<Served> {
  const requests: string[] = [];
  const cache = new Map<string, { status: number; type: string; body: Buffer }>();
  let self = '';
  const fetchUpstream = (path: string, accept: string): Promise<{ status: number; type: string; body: Buffer }> => new Promise((resolve, reject) => {
    const req = httpsRequest(`${upstream}${path}`, { headers: { accept, 'accept-encoding': 'gzip', 'user-agent': 'zanuri-test-registry' }, timeout: 60_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        let body = Buffer.concat(chunks);
        if (res.headers['content-encoding'] === 'gzip') body = gunzipSync(body);
        resolve({ status: res.statusCode ?? 502, type: String(res.headers['content-type'] ?? 'application/octet-stream'), body });
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${path}: timeout`)));
    req.on('error', reject);
    req.end();
  });
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const path = req.url ?? '/';
    requests.push(path);
    if (req.method !== 'GET') return void res.writeHead(405).end();
    const accept = String(req.headers.accept ?? 'application/json');
    const key = `${accept} ${path}`;
    const answer = cache.get(key) ? Promise.resolve(cache.get(key)!) : fetchUpstream(path, accept).then((a) => {
      const body = a.type.includes('json') ? Buffer.from(a.body.toString('utf8').replaceAll(`${upstream}/`, self)) : a.body;
      const out = { ...a, body };
      if (a.status === 200) cache.set(key, out);
      return out;
    });
    answer.then((a) => {
      res.writeHead(a.status, { 'content-type': a.type, 'content-length': a.body.length });
      res.end(a.body);
    }, (error: Error) => res.writeHead(502).end(error.message));
  });
  const served = await listen(server, requests);
  self = served.url;
  return served;
}
