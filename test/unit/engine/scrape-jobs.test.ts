import { describe, expect, it } from 'vitest';
import { selectSteps } from '../../../src/cli/provision.js';
import { addressOf, fleetScrapeJobs } from '../../../src/engine/scrape-jobs.js';

const key = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG5vdCBhIHJlYWwga2V5IGJ1dCB3ZWxsIGZvcm1lZA op@example';
/** A host of the fleet as the provision command builds it: the shipped profile's own playbook and parameters. */
async function host(spec: string, profile: string, set: string[] = []) {
  const { selected, gpu } = await selectSteps({ profile, set: [`deploy-user.authorizedKeys=${JSON.stringify([key])}`, ...set] });
  return { address: addressOf(spec), selected, gpu };
}

describe('the monitoring server\'s scrape jobs from the inventory', () => {
  it('are every host\'s exporters at the ports their steps serve, by the shipped profiles\' playbooks', async () => {
    const fleet = [
      await host('ops@mon.example.com', 'infra-monitoring'),
      await host('db1.example.com:2200', 'infra-database'),
      await host('root@10.0.0.7', 'arshai-redis-min', ['redis.clusterSecret=["a-test-cluster-secret-of-enough-length-0123456789"]']),
      await host('[fd00::9]:22', 'evolution-tier1'),
      await host('api1.example.com', 'infra-api', ['node-exporter.port=9200']),
    ];
    expect(fleetScrapeJobs(fleet)).toEqual([
      { name: 'node', targets: ['10.0.0.7:9100', '[fd00::9]:9100', 'api1.example.com:9200', 'db1.example.com:9100', 'mon.example.com:9100'] },
      { name: 'postgres', targets: ['db1.example.com:9187'] },
      { name: 'redis', targets: ['10.0.0.7:9121'] },
      { name: 'dcgm', targets: ['[fd00::9]:9400'] },
    ]);
  });

  it('leave the DCGM exporter out where the profile asks for no GPU (it skips itself there, and a target that never answers is an alert)', async () => {
    const noGpu = { ...(await host('gpu-less', 'evolution-tier1')), gpu: false };
    expect(fleetScrapeJobs([noGpu]).map((j) => j.name)).toEqual(['node']);
  });

  it('read the address from user@host:port, [v6]:port and a bare IPv6 address, in lower case', () => {
    expect(['ops@Mon.Example.com', 'db:2200', '[FD00::9]:22', 'fd00::9', '10.0.0.7'].map(addressOf)).toEqual(['mon.example.com', 'db', 'fd00::9', 'fd00::9', '10.0.0.7']);
  });

  it('go into the prometheus step below the operator\'s own jobs: defaults fill in, a --set wins', async () => {
    const jobs = [{ name: 'node', targets: ['db1.example.com:9100'] }];
    const auto = await selectSteps({ profile: 'infra-monitoring', set: [`deploy-user.authorizedKeys=${JSON.stringify([key])}`] }, { prometheus: { jobs } });
    expect(auto.selected.find((s) => s.step.id === 'prometheus')?.params).toMatchObject({ jobs });
    const mine = [{ name: 'node', targets: ['10.1.1.1:9100'] }];
    const given = await selectSteps({ profile: 'infra-monitoring', set: [`deploy-user.authorizedKeys=${JSON.stringify([key])}`, `prometheus.jobs=${JSON.stringify(mine)}`] }, { prometheus: { jobs } });
    expect(given.selected.find((s) => s.step.id === 'prometheus')?.params).toMatchObject({ jobs: mine });
  });
});
