import {
  MAX_INSTANCE_ID_LENGTH, PROJECT_ENV, sourceRefFromEnv, temporaryClusterId, temporaryClusterPrefix, temporaryInstanceId, temporaryWriterId,
} from '../src/contract';

const STAMP = '20261204231500';

describe('the source named by the environment (issue #20)', () => {
  test('an instance or a cluster, with the variable it came from', () => {
    expect(sourceRefFromEnv({ [PROJECT_ENV.SOURCE_INSTANCE_ID]: ' orders-db ' })).toEqual({ kind: 'instance', id: 'orders-db', field: 'SOURCE_INSTANCE_ID' });
    expect(sourceRefFromEnv({ [PROJECT_ENV.SOURCE_CLUSTER_ID]: 'orders-aurora', [PROJECT_ENV.SOURCE_INSTANCE_ID]: '' }))
      .toEqual({ kind: 'cluster', id: 'orders-aurora', field: 'SOURCE_CLUSTER_ID' });
  });

  test('both or neither is refused, naming both variables and what is accepted', () => {
    const both = sourceRefFromEnv({ SOURCE_INSTANCE_ID: 'a', SOURCE_CLUSTER_ID: 'b' });
    expect(both).toHaveProperty('problem');
    expect((both as { problem: string }).problem).toMatch(/SOURCE_INSTANCE_ID \("a"\) and SOURCE_CLUSTER_ID \("b"\) are both set; accepted: exactly one/);
    const neither = sourceRefFromEnv({ SOURCE_INSTANCE_ID: '  ' });
    expect((neither as { problem: string }).problem).toMatch(/^SOURCE_INSTANCE_ID and SOURCE_CLUSTER_ID: neither is set; accepted: exactly one/);
  });
});

describe('temporary cluster and writer identifiers', () => {
  test('a short source keeps its name: <source>-pitr-<stamp> and <source>-pitr-<stamp>-w', () => {
    expect(temporaryClusterId('Orders-Aurora', STAMP)).toBe(`orders-aurora-pitr-${STAMP}`);
    expect(temporaryWriterId('Orders-Aurora', STAMP)).toBe(`orders-aurora-pitr-${STAMP}-w`);
  });

  test.each([1, 20, 40, 41, 42, 45, 46, 47, 48, 63])('a %i-character source: both fit in 63 characters and share the IAM prefix', (length) => {
    const source = `a${'b-'.repeat(40)}`.slice(0, length).replace(/-$/, 'c');
    const cluster = temporaryClusterId(source, STAMP);
    const writer = temporaryWriterId(source, STAMP);
    expect(writer.length).toBeLessThanOrEqual(MAX_INSTANCE_ID_LENGTH);
    expect(cluster.startsWith(temporaryClusterPrefix(source))).toBe(true);
    expect(writer.startsWith(temporaryClusterPrefix(source))).toBe(true);
    expect(writer).not.toMatch(/--|-$/);
    // Up to the instance's room, the cluster's id is the instance's id.
    if (length <= 41) expect(cluster).toBe(temporaryInstanceId(source, STAMP));
  });
});
