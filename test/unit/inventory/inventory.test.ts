import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseIni, parseIniValue, shellWords } from '../../../src/inventory/ini.js';
import { loadInventory, parseInventoryText } from '../../../src/inventory/load.js';
import { groupHosts, hostVariables } from '../../../src/inventory/model.js';
import { selectHosts, splitPatterns } from '../../../src/inventory/pattern.js';
import { expandHostRange } from '../../../src/inventory/range.js';
import { inventoryTarget } from '../../../src/inventory/target.js';
import { fromYamlData } from '../../../src/inventory/yaml.js';
import { parseYamlText } from '../../../src/profiles/yaml.js';

const site = fileURLToPath(new URL('./fixtures/site/', import.meta.url));

describe('host ranges', () => {
  it('expand numbers with their zero padding, letters, strides and several ranges in one name', () => {
    expect(expandHostRange('web[01:03].x')).toEqual(['web01.x', 'web02.x', 'web03.x']);
    expect(expandHostRange('n[8:10]')).toEqual(['n8', 'n9', 'n10']);
    expect(expandHostRange('db-[a:c]')).toEqual(['db-a', 'db-b', 'db-c']);
    expect(expandHostRange('g[0:10:5]')).toEqual(['g0', 'g5', 'g10']);
    expect(expandHostRange('r[1:2]-[a:b]')).toEqual(['r1-a', 'r1-b', 'r2-a', 'r2-b']);
  });

  it('refuse backwards, malformed and absurdly large ranges', () => {
    expect(() => expandHostRange('w[5:1]')).toThrow(/runs backwards/);
    expect(() => expandHostRange('w[1]')).toThrow(/\[start:end\]/);
    expect(() => expandHostRange('w[a:5]')).toThrow(/two numbers or two letters/);
    expect(() => expandHostRange('w[1:9999999]')).toThrow(/too many hosts/);
  });
});

describe('the INI format', () => {
  it('reads quoted host variables as shlex does, and values as Python literals', () => {
    expect(shellWords('h1 a="x y" b=\'1 2\' # comment', 'f')).toEqual(['h1', 'a=x y', 'b=1 2']);
    expect(parseIniValue('22')).toBe(22);
    expect(parseIniValue('"22"')).toBe('22');
    expect(parseIniValue('yes')).toBe('yes');
    expect(parseIniValue('True')).toBe(true);
    expect(parseIniValue("['a', 'b']")).toEqual(['a', 'b']);
  });

  it('puts hosts before any section in ungrouped, and hosts of no other group there too', () => {
    const inv = parseIni('lone\n[web]\nw1:2222\n', 'hosts');
    expect(groupHosts(inv, 'ungrouped')).toEqual(['lone']);
    expect(hostVariables(inv, 'w1')).toEqual({ ansible_port: 2222 });
    expect(groupHosts(inv, 'all').sort()).toEqual(['lone', 'w1']);
  });

  it('refuses a malformed section, vars of a group never defined, a host line without key=value, and a child cycle', () => {
    expect(() => parseIni('[web\nh1\n', 'f')).toThrow(/malformed section header/);
    expect(() => parseIni('[web:vars]\nx=1\n', 'f')).toThrow(/never defined/);
    expect(() => parseIni('[web]\nh1 novalue\n', 'f')).toThrow(/expected key=value/);
    expect(() => parseIni('[a:children]\nb\n[b:children]\na\n', 'f')).toThrow(/each other's ancestors/);
    expect(() => parseIni('[web:weird]\nh1\n', 'f')).toThrow(/unknown kind/);
  });
});

describe('the YAML format', () => {
  it('refuses a plugin configuration and data that is not a mapping', () => {
    expect(() => fromYamlData({ plugin: 'aws_ec2' }, 'f.yml')).toThrow(/plugin configuration/);
    expect(() => fromYamlData(['a'], 'f.yml')).toThrow(/mapping of group names/);
  });

  it('reports malformed YAML with file:line:col', () => {
    expect(() => parseInventoryText('all:\n  hosts:\n    a: [\n', 'bad.yml', parseYamlText)).toThrow(/malformed YAML/);
    let caught: unknown;
    try {
      parseInventoryText('all:\n  hosts: {a: 1\n', 'bad.yml', parseYamlText);
    } catch (error) {
      caught = error;
    }
    expect(caught).toMatchObject({ location: expect.stringMatching(/^bad\.yml:\d+:\d+$/) });
  });

  it('reads a file without an extension as YAML when it is a mapping, else as INI', () => {
    expect(parseInventoryText('all:\n  hosts:\n    y1:\n', 'inv', parseYamlText).hosts).toEqual(['y1']);
    expect(parseInventoryText('[web]\nw1\n', 'inv', parseYamlText).hosts).toEqual(['w1']);
  });

  it('refuses ansible-vault encrypted content, which it cannot decrypt', () => {
    expect(() => parseInventoryText('$ANSIBLE_VAULT;1.1;AES256\n6162', 'hosts.yml', parseYamlText)).toThrow(/ansible-vault/);
  });
});

describe('an inventory with group_vars/ and host_vars/ beside it', () => {
  it('gives the INI and the YAML form of the same site the same hosts and variables', async () => {
    const ini = await loadInventory(`${site}hosts.ini`, parseYamlText);
    const yml = await loadInventory(`${site}hosts.yml`, parseYamlText);
    expect([...ini.hosts].sort()).toEqual([...yml.hosts].sort());
    for (const host of ini.hosts) {
      const { ansible_become: a, ...iniVars } = hostVariables(ini, host);
      const { ansible_become: b, ...ymlVars } = hostVariables(yml, host);
      expect(iniVars, host).toEqual(ymlVars);
      // INI keeps `yes` as text, YAML 1.1 reads it as true: both mean become.
      expect([a, b], host).toEqual(host.startsWith('gpu') ? ['yes', true] : [undefined, undefined]);
    }
  });

  it('turns a host into a connection, a profile and --set assignments', async () => {
    const inv = await loadInventory(`${site}hosts.ini`, parseYamlText);
    expect(inventoryTarget(inv, 'web01.example.com')).toMatchObject({ spec: 'ops@192.0.2.11', profile: 'aikovrr-minimum', sets: ['deploy-user.name=ops'] });
    expect(inventoryTarget(inv, 'web02.example.com').sets).toEqual(['ufw.internalFrom=["10.0.0.0/8"]']);
    expect(inventoryTarget(inv, 'db-z.example.com')).toMatchObject({ spec: 'ops@db-z.example.com:2200', profile: 'aikovrr-minimum' });
    expect(inventoryTarget(inv, 'gpu3')).toMatchObject({ spec: 'root@10.0.1.9', become: true, loginIsRoot: true });
    expect(inventoryTarget(inv, 'gpu3').identityFile).toMatch(/\/\.ssh\/gpu_key$/);
  });

  it('refuses connection variables it cannot honour, before any connection', () => {
    const target = (line: string) => inventoryTarget(parseIni(`[x]\n${line}\n`, 'hosts'), 'h');
    expect(() => target('h ansible_host="{{ lookup(\'env\', \'IP\') }}"')).toThrow(/Jinja template/);
    expect(() => target('h ansible_connection=winrm')).toThrow(/not one zanuri speaks/);
    expect(() => target('h ansible_become_user=postgres')).toThrow(/only becomes root/);
    expect(() => target('h ansible_become_method=su')).toThrow(/sudo -n only/);
    expect(() => target('h ansible_host="a;reboot"')).toThrow(/not a host zanuri can reach/);
    expect(() => target('h ansible_become=maybe')).toThrow(/must be a boolean/);
    expect(target('h ansible_connection=local').spec).toBeNull();
    expect(target('h ansible_host=2001:db8::1 ansible_port=2200').spec).toBe('[2001:db8::1]:2200');
  });
});

describe('host patterns', () => {
  const inv = parseIni('[web]\nw1\nw2\nw3\n[db]\nd1\nw3\n[edge]\ne1\n', 'hosts');

  it('split on commas, or on colons outside brackets', () => {
    expect(splitPatterns('web:&db:!w3')).toEqual(['web', '&db', '!w3']);
    expect(splitPatterns('web[0:1],db')).toEqual(['web[0:1]', 'db']);
    expect(splitPatterns('web[0:1]:db')).toEqual(['web[0:1]', 'db']);
  });

  it('apply unions, then intersections, then exclusions, whatever order they are written in', () => {
    expect(selectHosts(inv, '!w1:web')).toEqual(['w2', 'w3']);
    expect(selectHosts(inv, 'web:&db')).toEqual(['w3']);
    expect(selectHosts(inv, 'web:db:!w*')).toEqual(['d1']);
    expect(selectHosts(inv, 'all:!web')).toEqual(['d1', 'e1']);
  });

  it('match globs and regexes against groups and hosts, and take inclusive subscripts', () => {
    expect(selectHosts(inv, 'e*')).toEqual(['e1']);
    expect(selectHosts(inv, '~[wd][13]')).toEqual(['w1', 'w3', 'd1']);
    expect(selectHosts(inv, 'web[0:1]')).toEqual(['w1', 'w2']);
    expect(selectHosts(inv, 'web[-1]')).toEqual(['w3']);
    expect(selectHosts(inv, 'nothing')).toEqual([]);
    expect(() => selectHosts(inv, 'web[7]')).toThrow(/subscripted pattern/);
  });
});

describe('inventories that are not what they should be', () => {
  const shadowLike = 'root:$y$j9T$abcdefgh$SECRETHASHSECRETHASH:20228:0:99999:7:::\ndaemon:*:20228:0:99999:7:::\n';

  it('never quote a line of the file in an error: a shadow-like file as INI or YAML is refused by its file and line only', () => {
    for (const name of ['shadow', 'shadow.ini', 'shadow.yml']) {
      let message = '';
      try {
        parseInventoryText(shadowLike, `/tmp/${name}`, parseYamlText);
      } catch (error) {
        message = `${(error as Error).message} ${(error as { hint?: string }).hint ?? ''}`;
      }
      expect(message, name).not.toBe('');
      expect(message, name).not.toMatch(/SECRETHASH|daemon|20228/);
    }
  });

  it('refuse a variable or key given twice (Ansible would keep the last with a warning), at its line', () => {
    expect(() => parseInventoryText('[web]\na ansible_host=10.0.0.1 ansible_host=10.0.0.2\n', '/tmp/dup.ini', parseYamlText)).toThrow(/variable ansible_host is given twice on this line/);
    expect(() => parseInventoryText('all:\n  hosts:\n    a:\n      ansible_host: 10.0.0.1\n      ansible_host: 10.0.0.2\n', '/tmp/dup.yml', parseYamlText))
      .toThrow(/^\/tmp\/dup\.yml:5:7: a key is given twice in the same mapping$/);
  });
});
